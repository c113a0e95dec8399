"""One process's prefix index (credit_check/_server/_prefix_index.py): reference counts,
the preview a writer takes before recording its delta, and the signed full set."""

from __future__ import annotations

import hashlib
from collections import Counter

from credit_check._crypto import Signer, load_public_key, pack_prefixes, snapshot_message, verify
from credit_check._server._prefix_index import PrefixIndex, pack, unpack


def test_reference_counts_keep_a_prefix_while_any_entry_holds_it() -> None:
    index = PrefixIndex(Signer.generate())
    index.reset([5, 5, 7], 1)
    index.apply([5], [9], 2)  # 5 still held once: not removed
    assert 5 in index and 9 in index and index.version == 2
    index.apply([5, 7], [7], 3)  # 5 goes; 7 replaced by itself
    assert index.counts() == Counter({7: 1, 9: 1})
    assert unpack(index.state().packed).tolist() == [7, 9]


def test_preview_tells_added_removed_and_present_without_applying() -> None:
    index = PrefixIndex(Signer.generate())
    index.reset([1, 2, 2], 4)
    added, removed, present = index.preview(minus=[1, 2], plus=[3, 4, 4])
    assert (added, removed, present) == ({3, 4}, {1}, {2, 3, 4})
    assert index.counts() == Counter({1: 1, 2: 2}) and index.version == 4


def test_state_is_the_sorted_set_signed_with_its_version() -> None:
    signer = Signer.generate()
    index = PrefixIndex(signer)
    index.reset([2**32 - 1, 3, 3, 70000], 9)
    state = index.state()
    assert state.packed == pack_prefixes([3, 70000, 2**32 - 1]) and state.count == 3
    assert state.checksum == hashlib.sha256(state.packed).hexdigest()
    verify(load_public_key(signer.public_key), snapshot_message(9, state.checksum),
           state.signature, "snapshot")
    assert index.state() is state  # cached until the next change
    index.apply([], [4], 10)
    assert index.state().version == 10 and index.state().count == 4


def test_pack_and_unpack_keep_order_and_repeats() -> None:
    values = [9, 1, 9, 2**32 - 1]
    assert unpack(pack(values)).tolist() == values
    assert pack(values)[:4] == (9).to_bytes(4, "big")
    assert unpack(None).tolist() == [] and unpack(b"").tolist() == []
