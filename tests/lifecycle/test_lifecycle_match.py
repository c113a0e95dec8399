"""The re-screen's pure parts: the hint log of touched prefixes and the match step."""

from __future__ import annotations

from credit_check._lifecycle import _rescreen
from credit_check._lifecycle._rescreen import HintLog, match
from credit_check._prefixes import PrefixSet
from credit_check._snapshot import Hints, Signed, SnapshotState


def state(version: int, hints: Hints | None, epoch: int = 1) -> SnapshotState:
    return SnapshotState(version, "", "", PrefixSet.empty(), Signed("t", 1, epoch), hints=hints)


def delta(since: int, *prefixes: int, lifted: tuple[str, ...] = ()) -> Hints:
    return Hints(False, since, frozenset(prefixes), lifted)


def test_a_chain_of_deltas_covers_the_versions_it_spans() -> None:
    log = HintLog(state(5, None))
    assert log.note(state(6, delta(5, 1, 2))) == ()
    assert log.note(state(8, delta(6, 3))) == ()
    assert log.covers(5, 1) and log.covers(8, 1) and not log.covers(4, 1)
    assert log.touched == {1, 2, 3}
    log.restart()
    assert log.touched == set() and log.covers(8, 1) and not log.covers(7, 1)


def test_lifted_entries_are_handed_out_as_they_arrive() -> None:
    log = HintLog(state(5, None))
    six = state(6, delta(5, 1, lifted=("e1", "e2")))
    assert log.note(six) == ("e1", "e2")
    assert log.note(six) == ()  # the same state again: nothing new


def test_a_gap_a_full_answer_or_a_new_epoch_starts_afresh() -> None:
    log = HintLog(state(5, None))
    log.note(state(7, delta(6, 1)))               # a delta from a version not seen here
    assert not log.covers(5, 1) and log.covers(7, 1) and log.touched == set()
    log.note(state(9, Hints(True)))               # a full resync
    assert not log.covers(7, 1) and log.covers(9, 1)
    log.note(state(10, delta(9, 4), epoch=2))     # a restored database
    assert not log.covers(9, 2) and not log.covers(10, 1) and log.covers(10, 2)


def test_past_its_limit_the_log_starts_afresh() -> None:
    log = HintLog(state(1, None))
    limit = _rescreen.HINT_LIMIT
    log.note(state(2, delta(1, *range(limit - 1))))
    assert log.covers(1, 1)
    log.note(state(3, delta(2, limit, limit + 1)))
    assert not log.covers(1, 1) and log.covers(3, 1)


def test_match_takes_touched_prefixes_and_flagged_watches_that_may_have_changed() -> None:
    rows = [("touched", 10, 0, 0), ("untouched", 11, 0, 1), ("flagged-listed", 12, 1, 1),
            ("flagged-in-set", 13, 1, 0), ("flagged-clean", 14, 1, 0)]
    in_set = {13}.__contains__
    assert match(rows, {10, 99}, in_set) == (["touched", "flagged-listed", "flagged-in-set"],
                                              ["flagged-clean"])
    # Full: every watch listed now or when decided; a clean flagged one is settled.
    assert match(rows, None, in_set) == (["untouched", "flagged-listed", "flagged-in-set"],
                                          ["flagged-clean"])
