"""Re-screening (DESIGN §9.3): which watched decisions a sync touched, and deciding them
again under the current catalogue with fresh lookups.

The match step is local and cheap: the prefixes a delta added, removed or marked changed
are a set, and each watched decision's subject prefix is one membership test, so 100,000
watches against a 10,000-prefix delta are matched in a fraction of a second. Lookups are
made only for the decisions matched, in batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from credit_check._engine import Engine, Mode
from credit_check._exceptions import InvalidSubjectId, ServiceUnavailable
from credit_check._ids import validate_id_number
from credit_check._lifecycle._store import WatchRow
from credit_check._models import Decision, Subject, Transaction
from credit_check._snapshot import SnapshotState

logger = logging.getLogger("credit_check.lifecycle")

# A process keeps at most this many touched prefixes; past it, the next re-screen is full.
HINT_LIMIT = 100_000


class HintLog:
    """The prefixes touched since some snapshot version, as this process's syncs saw them.

    The log covers ``(start, end]`` in one epoch when every delta in between was applied
    here; anything else — a full answer, a gap, a new epoch — starts it afresh at the new
    version, and a re-screen from before that point is then done in full.
    """

    def __init__(self, state: SnapshotState | None) -> None:
        self._seen = state
        self.start = self.end = state.version if state is not None else None
        self.epoch = state.epoch if state is not None else None
        self.touched: set[int] = set()
        self.lifted: tuple[str, ...] = ()

    def note(self, state: SnapshotState | None) -> tuple[str, ...]:
        """Take in the snapshot now held; the entry ids it lifted (new to this log)."""
        if state is None or state is self._seen:
            return ()
        self._seen = state
        hints = state.hints
        if (hints is not None and not hints.full and hints.since == self.end
                and state.epoch == self.epoch
                and len(self.touched) + len(hints.prefixes) <= HINT_LIMIT):
            self.touched.update(hints.prefixes)
            self.end = state.version
            return hints.lifted
        self.start = self.end = state.version
        self.epoch = state.epoch
        self.touched = set()
        return hints.lifted if hints is not None else ()

    def covers(self, version: int, epoch: int | None) -> bool:
        """Whether the log holds every change after ``version`` up to what is held."""
        return (self.start is not None and epoch == self.epoch and self.start <= version
                and self.end is not None and version <= self.end)

    def restart(self) -> None:
        """Forget what was re-screened: the log starts at the version held."""
        self.start = self.end
        self.touched = set()


def match(rows: Sequence[WatchRow], touched: set[int] | None,
          in_set: Callable[[int], bool]) -> tuple[list[str], list[str]]:
    """The watched decisions to decide again, and the flagged ones that need nothing.

    Args:
        rows: the open watches.
        touched: the prefixes changed since the last re-screen; None for a full one.
        in_set: whether a prefix is in the snapshot held.

    A decision is decided again when its prefix was touched; in a full re-screen, or when
    flagged (indexed after changes it was not matched against), when it is listed now or
    was listed when decided — a subject on no list then and none now cannot have become
    worse.
    """
    again: list[str] = []
    settled: list[str] = []
    for decision_id, prefix, flagged, listed in rows:
        if touched is not None and prefix in touched:
            again.append(decision_id)
        elif touched is None or flagged:
            if listed or in_set(prefix):
                again.append(decision_id)
            elif flagged:
                settled.append(decision_id)
    return again, settled


def redecide(engine: Engine, baselines: dict[str, dict[str, Any]]) -> dict[str, Decision]:
    """Decide each baseline's subject again for its case, on fresh lookups made in batches
    (the subjects, then the legal representatives the service names).

    Raises:
        ServiceError: the service cannot answer; nothing is decided.
    """
    cases: dict[str, tuple[Subject, Transaction]] = {}
    for decision_id, record in baselines.items():
        subject = record["subject"]
        cases[decision_id] = (
            Subject.model_validate({"kind": subject["kind"], "id": subject["id"],
                                    "name": subject.get("name")}),
            Transaction.model_validate(record["transaction"]))
    fresh = engine.refresh(s.id for s, _ in cases.values())
    reps = []
    for answer in fresh.values():
        ref = answer.subject.legal_representative
        if ref is not None:
            try:
                reps.append(validate_id_number(ref.id))
            except InvalidSubjectId:
                continue  # the engine says so when it decides
    if reps:
        engine.refresh(reps)
    decided = {}
    for decision_id, (subject, transaction) in cases.items():
        new = engine.decide_many([subject], transaction, Mode.STRICT)[0]
        if new is None:  # pragma: no cover - STRICT decides or raises
            raise ServiceUnavailable("the re-screen could not decide")
        decided[decision_id] = new
    return decided
