"""The compact prefix set behaves exactly like a Python set of 32-bit integers."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from credit_check._prefixes import PrefixSet

u32 = st.integers(min_value=0, max_value=2**32 - 1)
# Many values in a few buckets, plus the extremes, to stress bucket edges.
crowded = st.builds(lambda hi, lo: (hi << 16) | lo, st.sampled_from([0, 1, 0x7FFF, 0xFFFF]),
                    st.integers(0, 0xFFFF))
prefix_sets = st.sets(st.one_of(u32, crowded, st.sampled_from([0, 2**32 - 1])), max_size=300)


def packed(values: set[int]) -> bytes:
    return b"".join(v.to_bytes(4, "big") for v in sorted(values))


@settings(max_examples=150, deadline=None)
@given(prefix_sets, st.lists(st.one_of(u32, crowded), max_size=50))
def test_membership_equals_a_python_set(values: set[int], probes: list[int]) -> None:
    ps = PrefixSet.from_iterable(values)
    assert len(ps) == len(values)
    for p in list(values) + probes:
        assert (p in ps) == (p in values)


@settings(max_examples=150, deadline=None)
@given(prefix_sets)
def test_packed_round_trip_is_exact(values: set[int]) -> None:
    data = packed(values)
    ps = PrefixSet.from_packed(data)
    assert ps.to_packed() == data
    assert list(ps) == sorted(values)


@settings(max_examples=150, deadline=None)
@given(prefix_sets, st.sets(st.one_of(u32, crowded), max_size=60), st.data())
def test_apply_delta_equals_set_operations(values: set[int], added: set[int], data: st.DataObject) -> None:
    removed = data.draw(st.sets(st.sampled_from(sorted(values)), max_size=30)) if values else set()
    before = PrefixSet.from_iterable(values)
    after = before.apply_delta(added, removed)
    expected = (values | added) - removed
    assert after.to_packed() == packed(expected)
    assert before.to_packed() == packed(values)  # the old set is untouched


def test_non_members_and_other_types_are_not_contained() -> None:
    ps = PrefixSet.from_iterable([5, 70000])
    assert 6 not in ps and 69999 not in ps
    assert "5" not in ps


def test_empty_set_contains_nothing_and_packs_to_nothing() -> None:
    ps = PrefixSet.empty()
    assert len(ps) == 0 and 0 not in ps and ps.to_packed() == b""


def test_arrays_round_trip_and_inconsistent_arrays_are_refused() -> None:
    import pytest

    from credit_check import InvalidServiceData

    ps = PrefixSet.from_iterable(range(0, 10**6, 997))
    offsets, lows = ps.save_arrays()
    assert PrefixSet.from_arrays(offsets, lows).to_packed() == ps.to_packed()
    with pytest.raises(InvalidServiceData):
        PrefixSet.from_arrays(offsets, lows[:-2])
    with pytest.raises(InvalidServiceData):
        PrefixSet.from_packed(b"\x00\x01\x02")


def test_about_two_bytes_per_member_at_scale() -> None:
    ps = PrefixSet.from_iterable(range(0, 2**32, 2**32 // 1_000_000))
    assert ps.nbytes / len(ps) < 2.3
