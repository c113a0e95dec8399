"""The compact prefix set behaves exactly like a Python set of 32-bit integers, and a set
reached by deltas is the set rebuilt from scratch, checksum and layout included."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credit_check import InvalidServiceData
from credit_check._prefixes import BUCKETS, PrefixSet, unpack

u32 = st.integers(min_value=0, max_value=2**32 - 1)
# Many values in a few buckets, plus the extremes, to stress bucket edges.
crowded = st.builds(lambda hi, lo: (hi << 16) | lo, st.sampled_from([0, 1, 0x7FFF, 0xFFFF]),
                    st.integers(0, 0xFFFF))
# Many values sharing their first three bytes: long runs of equal third bytes in a bucket.
dense = st.builds(lambda hi, third, fourth: (hi << 16) | (third << 8) | fourth,
                  st.sampled_from([0, 5, 0xFFFF]), st.sampled_from([0, 7, 0xFF]),
                  st.integers(0, 0xFF))
prefixes = st.one_of(u32, crowded, dense, st.sampled_from([0, 2**32 - 1]))
prefix_sets = st.sets(prefixes, max_size=300)


def packed(values: set[int]) -> bytes:
    return b"".join(v.to_bytes(4, "big") for v in sorted(values))


@settings(max_examples=150, deadline=None)
@given(prefix_sets, st.lists(prefixes, max_size=50))
def test_membership_equals_a_python_set(values: set[int], probes: list[int]) -> None:
    ps = PrefixSet.from_iterable(values)
    assert len(ps) == len(values)
    neighbours = [p + d for p in values for d in (-257, -256, -1, 1, 256, 257)]
    for p in list(values) + probes + neighbours:
        assert (p in ps) == (p in values)


@settings(max_examples=150, deadline=None)
@given(prefix_sets)
def test_packed_round_trip_is_exact(values: set[int]) -> None:
    data = packed(values)
    ps = PrefixSet.from_packed(data)
    assert ps.to_packed() == data
    assert unpack(data) == list(ps) == sorted(values)
    assert ps.checksum() == hashlib.sha256(data).hexdigest()


@settings(max_examples=150, deadline=None)
@given(prefix_sets, st.sets(prefixes, max_size=60), st.data())
def test_apply_delta_equals_set_operations(values: set[int], added: set[int], data: st.DataObject) -> None:
    removed = data.draw(st.sets(st.sampled_from(sorted(values)), max_size=30)) if values else set()
    removed |= data.draw(st.sets(prefixes, max_size=5))  # absent ones are no-ops
    before = PrefixSet.from_iterable(values)
    after = before.apply_delta(added, removed)
    expected = (values | added) - removed
    assert after.to_packed() == packed(expected)
    assert before.to_packed() == packed(values)  # the old set is untouched


@settings(max_examples=200, deadline=None)
@given(prefix_sets, st.integers(1, 4), st.data())
def test_applying_deltas_equals_rebuilding_from_the_resulting_set(
    values: set[int], steps: int, data: st.DataObject
) -> None:
    ps, current = PrefixSet.from_iterable(values), set(values)
    for _ in range(steps):
        added = data.draw(st.sets(prefixes, max_size=40))
        removed = data.draw(st.sets(st.sampled_from(sorted(current)), max_size=40)
                            if current else st.just(set()))
        ps = ps.apply_delta(added, removed)
        current = (current | added) - removed
        rebuilt = PrefixSet.from_iterable(current)
        assert ps.checksum() == rebuilt.checksum() == hashlib.sha256(packed(current)).hexdigest()
        assert ps.save_arrays() == rebuilt.save_arrays()  # the same layout, not just the same bytes
        assert len(ps) == len(current)


def test_a_delta_that_changes_nothing_returns_the_same_set() -> None:
    ps = PrefixSet.from_iterable([5, 70000])
    assert ps.apply_delta([], []) is ps
    assert ps.apply_delta([5], [6]) is ps  # adding a member, removing a non-member


def test_a_prefix_both_added_and_removed_ends_up_removed() -> None:
    ps = PrefixSet.from_iterable([5, 9]).apply_delta([5, 7], [5, 7])
    assert list(ps) == [9]


def test_non_members_and_other_types_are_not_contained() -> None:
    ps = PrefixSet.from_iterable([5, 70000, 2**32 - 1])
    assert 6 not in ps and 69999 not in ps
    assert "5" not in ps
    assert 2**32 not in ps and -1 not in ps and 2**32 + 5 not in ps


def test_prefixes_outside_32_bits_are_refused() -> None:
    ps = PrefixSet.from_iterable([5])
    with pytest.raises(ValueError):
        ps.apply_delta([2**32], [])
    with pytest.raises(ValueError):
        ps.apply_delta([], [-1])
    with pytest.raises(ValueError):
        PrefixSet.from_iterable([2**32])


def test_empty_set_contains_nothing_and_packs_to_nothing() -> None:
    ps = PrefixSet.empty()
    assert len(ps) == 0 and 0 not in ps and ps.to_packed() == b""
    assert ps.checksum() == hashlib.sha256(b"").hexdigest()
    assert list(ps.apply_delta([3], [])) == [3]


def test_arrays_round_trip_and_inconsistent_arrays_are_refused() -> None:
    ps = PrefixSet.from_iterable(range(0, 10**6, 997))
    offsets, third, fourth = ps.save_arrays()
    assert PrefixSet.from_arrays(offsets, third, fourth).to_packed() == ps.to_packed()
    with pytest.raises(InvalidServiceData):
        PrefixSet.from_arrays(offsets, third[:-1], fourth[:-1])
    with pytest.raises(InvalidServiceData):
        PrefixSet.from_arrays(offsets, third, fourth[:-1])
    with pytest.raises(InvalidServiceData):
        PrefixSet.from_arrays(offsets[:-4], third, fourth)
    with pytest.raises(InvalidServiceData):
        PrefixSet.from_arrays(offsets[:-1], third, fourth)
    width = len(offsets) // (BUCKETS + 1)
    # Bucket 1 ends before it starts: the total still matches, the offsets do not.
    swapped = offsets[:width] + offsets[2 * width : 3 * width] + offsets[width : 2 * width]
    with pytest.raises(InvalidServiceData):
        PrefixSet.from_arrays(swapped + offsets[3 * width :], third, fourth)
    with pytest.raises(InvalidServiceData):
        PrefixSet.from_packed(b"\x00\x01\x02")
    with pytest.raises(InvalidServiceData):
        unpack(b"\x00\x01\x02")


def test_about_two_bytes_per_member_at_scale() -> None:
    ps = PrefixSet.from_iterable(range(0, 2**32, 2**32 // 1_000_000))
    assert ps.nbytes / len(ps) < 2.3
