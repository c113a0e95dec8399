"""The case lifecycle of one Checker: watches derived from the decision records off the
request path, case outcomes and closing, and — in the follower process only (DESIGN rule
14) — re-screening after each sync, surfacing lifted measures and the commitment sweep.

``check()`` writes nothing here: the follower reads the decision records the outbox keeps
(decisions of a case, or that applied a measure) and watches them from there, so a watch
costs the request path nothing. Calls that name a decision (``report``, ``close_case``,
``commit``) write directly.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credit_check._exceptions import CreditCheckError, ServiceError
from credit_check._lifecycle._index import RESCREENED, Indexer, parse_marker
from credit_check._lifecycle._ledger import Ledger, _shown
from credit_check._lifecycle._records import original_decision
from credit_check._lifecycle._rescreen import HintLog, match, redecide
from credit_check._lifecycle._store import LifecycleStore
from credit_check._lifecycle._workdays import WorkdayCalendar
from credit_check._models import CST, Decision, Outcome

if TYPE_CHECKING:
    from credit_check._engine import Engine
    from credit_check._outbox import Outbox
    from credit_check._outbox._pg_outbox import PgOutbox
    from credit_check._pg import AdvisoryRole
    from credit_check._roles import RoleLock
    from credit_check._sync import Syncer

logger = logging.getLogger("credit_check.lifecycle")

# report() results that end a case for that decision (its watch closes).
FINAL_RESULTS = frozenset({"approved", "granted", "rejected", "refused", "denied",
                           "withdrawn", "closed", "completed", "cancelled", "revoked",
                           "terminated"})


def _marker(epoch: int | None, version: int) -> str:
    return f"{epoch if epoch is not None else ''}:{version}"


class Lifecycle:
    """Watches, re-screens, lifts and commitments for one Checker.

    Args:
        store: the lifecycle store (the data directory's or the outbox database's).
        outbox: the checker's outbox (its records are what is watched).
        engine: decides subjects again.
        syncer: the snapshot held and its hints.
        role: the follower role (shared with post-checks).
        department: the checking department.
        clock: the checker's clock.
        on_rescreen: the host's callback ``(original, new)``.
        watch_limit: the most open watches; more are refused with an ERROR and counted.
        lift_retention: seconds a closed decision that applied a measure is kept, so a
            measure taken on an entry later removed as wrong can still be surfaced.
        calendar: working days.
        counted: called for each decision decided again, with whether its outcome changed
            (the metrics).
        index_lock: the lock file shared with the sender process, which indexes the
            records it imports (see ``_index``).
    """

    def __init__(self, *, store: LifecycleStore, outbox: Outbox | PgOutbox, engine: Engine,
                 syncer: Syncer, role: RoleLock | AdvisoryRole, department: str,
                 clock: Callable[[], dt.datetime],
                 on_rescreen: Callable[[Decision, Decision], None] | None,
                 watch_limit: int, lift_retention: float, calendar: WorkdayCalendar,
                 counted: Callable[[bool], None] = lambda changed: None,
                 index_lock: Path | None = None) -> None:
        self.store = store
        self._outbox = outbox
        self._engine = engine
        self._syncer = syncer
        self.role = role
        self._department = department
        self._clock = clock
        self._callback = on_rescreen
        self.indexer = Indexer(store, outbox, watch_limit=watch_limit,
                               lift_retention=lift_retention, lock_path=index_lock)
        self.ledger = Ledger(store, outbox.write, calendar, clock)
        self._log = HintLog(syncer.snapshot)
        self._lock = threading.Lock()
        self._counted = counted
        self.failures = 0

    def reset_lock(self) -> None:
        """Fresh locks for a forked child."""
        self._lock = threading.Lock()
        self.indexer.reset_lock()
        self.store.tables.reset_lock()

    # -- every process -----------------------------------------------------------------

    def after_sync(self) -> None:
        """After a good sync: take in its hints (lifted entries go to the shared store at
        once, whichever process saw them), then follow if this process is the follower.
        Never raises into the sync thread: a failure is logged and counted, and the work
        is tried again after the next sync."""
        try:
            lifted = self._log.note(self._syncer.snapshot)
            if lifted:
                self.store.add_lifts(lifted, self._now().timestamp())
            if self.role.try_acquire():
                self.follow()
        except (CreditCheckError, OSError) as exc:
            self.failures += 1
            logger.error("case follow-up postponed: %s", exc)
        except Exception:  # a bug of ours must not stop the syncs that keep data fresh
            self.failures += 1
            logger.exception("case follow-up failed; it is tried again after the next sync")

    def _now(self) -> dt.datetime:
        return self._clock().astimezone(CST)

    # -- calls that name a decision or case (any process) -------------------------------

    def reported(self, record: dict[str, Any], result: str,
                 watch_until: dt.datetime | None) -> None:
        """A case outcome: a final result closes the decision's watch; ``watch_until``
        keeps a grant watched until then."""
        final = result.strip().lower() in FINAL_RESULTS
        if not final and watch_until is None:
            return
        until = watch_until.timestamp() if watch_until is not None else None
        keep = max(self.indexer.keep_until(record), until or 0.0)
        self.store.watch(record, close=until is None, watch_until=until, keep_until=keep,
                         flagged=self.indexer.flagged(record, self.indexer.mark()))

    def close_case(self, case_id: str) -> int:
        """Close every watch of a case; how many were open."""
        now = self._now()
        return self.store.close_case(case_id, now.isoformat(), now.timestamp())

    # -- the follower ------------------------------------------------------------------

    def follow(self) -> None:
        """Index new decisions, then surface lifts, re-screen and sweep commitments."""
        if not self._lock.acquire(blocking=False):
            return  # another thread of this process is on it
        try:
            self.indexer.index()
            self.store.expire(self._now().timestamp())
            try:
                # Lifts first: a re-screen of the same change would make the decision's
                # baseline the outcome without the wrong entry.
                self.lift()
                self.rescreen()
            except ServiceError as exc:
                logger.info("re-screening postponed, the service is not answering: %s", exc)
            self.ledger.sweep()
        finally:
            self._lock.release()

    def rescreen(self) -> int:
        """Decide again every watched decision that the changes since the last re-screen
        may have touched (all that may, when those changes are not all known here); report
        each that became more severe. How many were reported."""
        snapshot = self._syncer.snapshot
        if snapshot is None:
            return 0  # nothing to compare with yet
        mark = parse_marker(self.store.meta(RESCREENED))
        rows = self.store.open_watches()
        touched: set[int] | None
        if mark is not None and mark[0] == snapshot.epoch and self._log.covers(mark[1],
                                                                               snapshot.epoch):
            touched = self._log.touched
        elif mark is None and not rows:
            touched = set()
        else:
            touched = None
            if mark is not None:
                logger.info("re-screening every watched decision: the changes since data "
                            "version %s are not all known to this process", mark[1])
        again, settled = match(rows, touched, snapshot.prefixes.__contains__)
        reported = 0
        for start in range(0, len(again), 1000):
            chunk = again[start : start + 1000]
            reported += self._decide_again(self.store.baselines(chunk), lifted={})
        self.store.rebase([], settled)
        self.store.set_meta(RESCREENED, _marker(snapshot.epoch, snapshot.version))
        self._log.restart()
        return reported

    def lift(self) -> int:
        """Surface every kept decision that applied a measure on an entry removed as wrong;
        how many."""
        pending = self.store.pending_lifts()
        by_decision: dict[str, list[str]] = {}
        for entry_id, decision_ids in pending.items():
            for decision_id in decision_ids:
                by_decision.setdefault(decision_id, []).append(entry_id)
        surfaced = 0
        if by_decision:
            surfaced = self._decide_again(self.store.baselines(list(by_decision)),
                                          lifted=by_decision)
        for entry_id in pending:
            self.store.lifted(entry_id)
        return surfaced

    def _decide_again(self, baselines: dict[str, dict[str, Any]],
                      lifted: dict[str, list[str]]) -> int:
        if not baselines:
            return 0
        decided = redecide(self._engine, baselines)
        updates: list[dict[str, Any]] = []
        reported = 0
        for decision_id, base in baselines.items():
            new = decided[decision_id]
            before = Outcome(base["outcome"])
            self._counted(new.outcome is not before)
            entries = lifted.get(decision_id)
            if entries or new.outcome.severity > before.severity:
                self._report(base, new, before, entries)
                reported += 1
            record = self._as_baseline(base, new)
            if record["outcome"] != base["outcome"] or record["matches"] != base.get("matches"):
                updates.append(record)
        self.store.rebase(updates, baselines)
        return reported

    def _as_baseline(self, base: dict[str, Any], new: Decision) -> dict[str, Any]:
        from credit_check._feedback import decision_record

        record = decision_record(new, department=self._department).model_dump(mode="json")
        record.update(decision_id=base["decision_id"], transaction=base["transaction"],
                      subject=base["subject"])
        return record

    def _report(self, base: dict[str, Any], new: Decision, before: Outcome,
                lifted: list[str] | None) -> None:
        from credit_check._lifecycle._records import rescreen_record

        record = rescreen_record(base, new, department=self._department, lifted=lifted)
        self._outbox.write(record)
        data = record.model_dump(mode="json")
        kind = "lift" if lifted else "changed"
        shown = {"subject": _shown(base["subject"]), "scenario": base["transaction"]["scenario"],
                 "data_version": new.data_version, "lifted_entries": lifted or [],
                 "new_decision_id": new.decision_id}
        if not self.store.add_event(kind, data, before, self._now().isoformat(), shown):
            return  # reported before a restart: once
        case_id = base["transaction"].get("case_id")
        if lifted:
            logger.warning("re-screen: case %s (subject %s) — a measure rests on entries "
                           "removed as wrong (%s): lift it; outcome now %s (was %s)",
                           case_id, shown["subject"], ", ".join(lifted), new.outcome.value,
                           before.value)
        else:
            logger.warning("re-screen: case %s (subject %s) is now %s (was %s)", case_id,
                           shown["subject"], new.outcome.value, before.value)
        if self._callback is not None:
            try:
                self._callback(original_decision(base), new)
            except Exception:  # the host's callback must not stop the follow-up
                logger.exception("on_rescreen callback failed for decision %s",
                                 base["decision_id"])
