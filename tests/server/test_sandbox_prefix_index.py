"""The sandbox's live prefix index: reference counts, deltas, and deltas read while admin
changes land (the delta, checksum and signature must describe one and the same version)."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from credit_check._crypto import (
    Signer,
    b64d,
    load_public_key,
    pack_prefixes,
    snapshot_message,
    unpack_prefixes,
    verify,
)
from credit_check._server._prefix_index import KEPT_DELTAS, PrefixIndex, SnapshotGone


def test_reference_counts_and_deltas() -> None:
    signer = Signer.generate()
    index = PrefixIndex(signer, version=1)
    index.reset([5, 5, 7], 1)
    index.change([5], [9], 2)  # 5 still held once: not removed
    index.change([5, 7], [7], 3)  # 5 goes; 7 replaced by itself: no change
    full = index.full()
    assert unpack_prefixes(b64d(str(full["prefixes"]))) == [7, 9] and full["count"] == 2
    delta = index.delta(1)
    assert (unpack_prefixes(b64d(str(delta["added"]))),
            unpack_prefixes(b64d(str(delta["removed"])))) == ([9], [5])
    assert delta["checksum"] == full["checksum"] == hashlib.sha256(pack_prefixes([7, 9])).hexdigest()
    verify(load_public_key(signer.public_key), snapshot_message(3, str(delta["checksum"])),
           str(delta["signature"]), "snapshot")
    for since in (0, 4, -1):
        with pytest.raises(SnapshotGone):
            index.delta(since)


def test_only_the_last_deltas_are_kept() -> None:
    index = PrefixIndex(Signer.generate(), version=1)
    for v in range(2, KEPT_DELTAS + 3):
        index.change([], [v], v)
    with pytest.raises(SnapshotGone):
        index.delta(1)
    assert index.delta(index.version - KEPT_DELTAS)["since"] == index.version - KEPT_DELTAS


def test_delta_read_during_changes_is_consistent() -> None:
    """A delta served while another thread applies changes: added/removed applied to the set
    at ``since`` must give exactly the set whose checksum (and version) the answer carries."""
    index = PrefixIndex(Signer.generate(), version=1)
    index.reset(range(100), 1)
    base = set(range(100))
    stop = threading.Event()

    def writer() -> None:
        for v in range(2, 200):
            if stop.is_set():
                return
            index.change([v % 100] if v % 2 else [], [1000 + v], v)
            time.sleep(0.0002)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        bad = []
        while thread.is_alive():
            delta = index.delta(1)
            result = (base - set(unpack_prefixes(b64d(str(delta["removed"]))))) | set(
                unpack_prefixes(b64d(str(delta["added"]))))
            if hashlib.sha256(pack_prefixes(sorted(result))).hexdigest() != delta["checksum"]:
                bad.append(delta["version"])
            if len(bad) > 3:
                break
    finally:
        stop.set()
        thread.join()
    assert bad == []
