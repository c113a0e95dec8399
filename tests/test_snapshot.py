"""Signed snapshots: full and delta answers are verified, tampering and replays refused,
and the last good state survives every refusal and a restart from disk."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit_check._crypto import (
    Signer,
    b64e,
    id_prefix,
    load_public_key,
    pack_prefixes,
    prefix_checksum,
    snapshot_message,
)
from credit_check._exceptions import InvalidServiceData
from credit_check._snapshot import MAGIC, SnapshotChecksumMismatch, SnapshotState

SIGNER = Signer.generate()
KEY = load_public_key(SIGNER.public_key)
ORG = "91350100M000100Y43"


def full(values: set[int], version: int, signer: Signer = SIGNER, **over: Any) -> dict[str, Any]:
    data = pack_prefixes(values)
    checksum = prefix_checksum(data)
    body = {"version": version, "full": True, "prefixes": b64e(data), "checksum": checksum,
            "signature": signer.sign(snapshot_message(version, checksum)), "count": len(values)}
    body.update(over)
    return body


def delta(old: set[int], new: set[int], since: int, version: int, **over: Any) -> dict[str, Any]:
    checksum = prefix_checksum(pack_prefixes(new))
    body = {"version": version, "since": since, "full": False,
            "added": b64e(pack_prefixes(new - old)), "removed": b64e(pack_prefixes(old - new)),
            "checksum": checksum, "signature": SIGNER.sign(snapshot_message(version, checksum))}
    body.update(over)
    return body


BASE = {id_prefix(ORG), 1, 2, 3, 2**32 - 1}


def test_full_snapshot_is_verified_and_answers_membership() -> None:
    state = SnapshotState.empty().apply(full(BASE, 4), KEY)
    assert state.version == 4 and state.contains(ORG)
    assert not state.contains("91110000600037341L")


def test_delta_applies_to_its_base_version() -> None:
    state = SnapshotState.empty().apply(full(BASE, 4), KEY)
    new = (BASE - {1}) | {42}
    after = state.apply(delta(BASE, new, 4, 5), KEY)
    assert after.version == 5 and 42 in after.prefixes and 1 not in after.prefixes
    assert 1 in state.prefixes  # the old state is untouched


u32 = st.integers(min_value=0, max_value=2**32 - 1)
# Values crowding two buckets (and one run of equal third bytes) as well as spread ones.
near = st.builds(lambda hi, lo: hi << 16 | lo, st.sampled_from([3, 0xFFFF]),
                 st.one_of(st.integers(0, 0xFFFF), st.integers(0x1200, 0x12FF)))
listed = st.sets(st.one_of(u32, near), max_size=200)


@settings(max_examples=100, deadline=None)
@given(listed, st.lists(st.tuples(listed, st.integers(0, 100)), min_size=1, max_size=4))
def test_signed_deltas_end_where_a_full_snapshot_of_the_same_set_starts(
    first: set[int], steps: list[tuple[set[int], int]]
) -> None:
    """Each step keeps part of the set and adds new values; the state it reaches is the one a
    full snapshot of that set gives, checksum and layout included."""
    state = SnapshotState.empty().apply(full(first, 1), KEY)
    current = first
    for version, (fresh, keep_percent) in enumerate(steps, start=2):
        kept = set(sorted(current)[: len(current) * keep_percent // 100])
        new = kept | fresh
        state = state.apply(delta(current, new, version - 1, version), KEY)
        current = new
        rebuilt = SnapshotState.empty().apply(full(current, version), KEY)
        assert state.version == version and state.checksum == rebuilt.checksum
        assert state.prefixes.save_arrays() == rebuilt.prefixes.save_arrays()
        assert state.prefixes.to_packed() == pack_prefixes(current)


def test_delta_with_a_wrong_checksum_asks_for_a_full_resync() -> None:
    state = SnapshotState.empty().apply(full(BASE, 4), KEY)
    body = delta(BASE, BASE | {7}, 4, 5)
    body["added"] = b64e(pack_prefixes({8}))  # the data no longer adds up to the signed set
    with pytest.raises(SnapshotChecksumMismatch):
        state.apply(body, KEY)


@pytest.mark.parametrize("tamper", ["signature", "other_key", "checksum", "prefixes"])
def test_tampered_full_snapshot_is_refused(tamper: str) -> None:
    good = SnapshotState.empty().apply(full(BASE, 4), KEY)
    if tamper == "signature":
        body = full(BASE, 5, signature=SIGNER.sign(b"something else"))
    elif tamper == "other_key":
        body = full(BASE, 5, signer=Signer.generate())
    elif tamper == "checksum":
        body = full(BASE, 5)
        body["checksum"] = "0" * 64
    else:
        body = full(BASE, 5)
        body["prefixes"] = b64e(pack_prefixes(BASE | {99}))
    with pytest.raises(InvalidServiceData):
        good.apply(body, KEY)
    assert good.version == 4 and good.contains(ORG)


def test_replayed_older_version_is_refused() -> None:
    state = SnapshotState.empty().apply(full(BASE, 9), KEY)
    with pytest.raises(InvalidServiceData, match="older"):
        state.apply(full(BASE - {1}, 8), KEY)


def test_delta_from_another_version_is_refused() -> None:
    state = SnapshotState.empty().apply(full(BASE, 4), KEY)
    with pytest.raises(InvalidServiceData, match="cannot apply"):
        state.apply(delta(BASE, BASE | {5}, 3, 5), KEY)


@pytest.mark.parametrize("body", [{}, {"version": "1", "checksum": "", "signature": ""}, [], None])
def test_malformed_answers_are_refused(body: Any) -> None:
    with pytest.raises(InvalidServiceData):
        SnapshotState.empty().apply(body, KEY)


def test_persisted_snapshot_round_trips_with_mode_0600(tmp_path: Path) -> None:
    state = SnapshotState.empty().apply(full(BASE, 4), KEY)
    path = tmp_path / "snapshot.bin"
    state.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    loaded = SnapshotState.load(path, KEY)
    assert loaded.version == 4 and loaded.prefixes.to_packed() == state.prefixes.to_packed()


def test_tampered_snapshot_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.bin"
    SnapshotState.empty().apply(full(BASE, 4), KEY).save(path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip a bit in the last prefix
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidServiceData):
        SnapshotState.load(path, KEY)
    path.write_bytes(b"not a snapshot")
    with pytest.raises(InvalidServiceData):
        SnapshotState.load(path, KEY)


def test_damaged_or_older_format_snapshot_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.bin"
    SnapshotState.empty().apply(full(BASE, 4), KEY).save(path)
    data = path.read_bytes()
    for damaged in (b"CCSNAP1\n" + data[len(MAGIC):],  # the format before the byte planes
                    data[:-1],  # truncated
                    data.replace(b'"count": 5', b'"count": 4'),  # planes split wrongly
                    data.replace(b'"count": 5', b'"count": "x"')):
        path.write_bytes(damaged)
        with pytest.raises(InvalidServiceData):
            SnapshotState.load(path, KEY)


def test_snapshot_file_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.bin"
    SnapshotState.empty().apply(full(BASE, 4), KEY).save(path)
    with pytest.raises(InvalidServiceData):
        SnapshotState.load(path, load_public_key(Signer.generate().public_key))
