"""How the Checker reaches a Decision: snapshot prefilter, lookup cache, one lookup round
trip for all prefix hits, legal representatives, the rulebook, and rule 9's fallback.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from credit_check._breaker import CircuitOpen
from credit_check._cache import LookupCache
from credit_check._exceptions import (
    InvalidReceipt,
    InvalidServiceData,
    InvalidSubjectId,
    OutboxError,
    ServiceError,
    ServiceUnavailable,
)
from credit_check._ids import validate_id_number
from credit_check._lookup import LookupClient, own_entries, representative_entries
from credit_check._models import (
    Catalog,
    Decision,
    Effect,
    Outcome,
    Scenario,
    Subject,
    SubjectKind,
    SubjectLookup,
    Target,
    Transaction,
    Withheld,
    to_cst_datetime,
    trusted,
)
from credit_check._receipts import (
    Receipt,
    ServiceReceipt,
    SnapshotReceipt,
    key_id,
    matches_answer,
    verify_service_receipt,
)
from credit_check._rules import (
    clean_years,
    decide,
    fallback_decision,
    time_signature,
    withheld_cause,
    withheld_targets,
)
from credit_check._settings import FallbackPolicy
from credit_check._snapshot import SnapshotState
from credit_check._sync import Syncer

logger = logging.getLogger("credit_check")


class Mode(enum.Enum):
    NORMAL = "normal"  # network allowed; failures fall back (rule 9)
    LOCAL = "local"  # snapshot and cache only; None where the network would be needed
    STRICT = "strict"  # network allowed; failures raise (post-checks)


@dataclass(frozen=True, slots=True)
class _Answer:
    lookup: SubjectLookup | None  # None: the snapshot says the subject is on no list
    stale: bool = False
    receipt: Receipt | None = None


_CLEAR = _Answer(None)
_STALE_CLEAR = _Answer(None, stale=True)


def _clear(snapshot: SnapshotState, sid: str) -> _Answer:
    # Not listed by the snapshot: the receipt is its signed header and the prefix.
    header = snapshot.header
    return _Answer(None, receipt=SnapshotReceipt(header, sid)) if header is not None else _CLEAR


def _cause(exc: ServiceError) -> str:
    # Shown in the fallback's reasons: short, and naming an open breaker as such.
    return "circuit open" if isinstance(exc, CircuitOpen) else type(exc).__name__

# Rulebook results kept for reuse; cleared whole when full (they are cheap to rebuild).
MEMO_SIZE = 4096


@dataclass(frozen=True, slots=True)
class _Memo:
    """A decision's content, valid for the very answers and catalogue it was made from and
    for moments with the same time signature."""

    catalog: Catalog
    lookup: SubjectLookup | None
    rep_lookup: SubjectLookup | None
    decision: Decision


def _allow_reasons() -> tuple[str, ...]:
    # Taken from the rulebook itself so the fast path says exactly what decide() says.
    probe = decide(
        subject=Subject.model_construct(kind=SubjectKind.ORGANIZATION, id="-", name=None,
                                        legal_representative=None),
        transaction=Transaction.model_construct(scenario=Scenario.LICENSING),
        catalog=Catalog.model_construct(version="-", lists=[], measures=[]),
        now=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
        decision_id="-",
    )
    return tuple(probe.reasons)


_ALLOW_REASONS = _allow_reasons()
# Every field is given where the engine builds a Decision from parts already valid.
_DECISION_FIELDS = frozenset(Decision.model_fields)


class _Plan:
    """What one catalogue asks of the lookups, per scenario."""

    __slots__ = ("catalog", "clean", "clean_years", "rep")

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.clean = frozenset(
            s for m in catalog.measures
            if m.effect is Effect.GREEN_CHANNEL and m.clean_years is not None
            for s in m.scenarios
        )
        self.clean_years = {s: clean_years(catalog, s) for s in self.clean}
        self.rep = frozenset(
            s for m in catalog.measures if m.target is Target.LEGAL_REPRESENTATIVE
            for s in m.scenarios
        )


def new_decision_id() -> str:
    return os.urandom(16).hex()


class Engine:
    """Decides subjects for one Checker; thread-safe (state is replaced whole, caches lock)."""

    def __init__(
        self,
        *,
        syncer: Syncer,
        cache: LookupCache,
        lookup: LookupClient,
        fallback: FallbackPolicy,
        on_degraded: Callable[[Decision], None],
        clock: Callable[[], dt.datetime],
        max_stale: float = 6 * 3600.0,
    ) -> None:
        self._syncer = syncer
        self._cache = cache
        self._lookup = lookup
        self._fallback = fallback
        self._on_degraded = on_degraded
        self._clock = clock
        self._max_stale = max_stale
        self._plan: _Plan | None = None
        self._memo: dict[tuple[object, ...], _Memo] = {}
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        # Withholding reasons seen (rule 11) -> when first seen; cleared when a person is
        # shown in full again.
        self.withheld_causes: dict[str, float] = {}

    def _plan_for(self, catalog: Catalog) -> _Plan:
        plan = self._plan
        if plan is None or plan.catalog is not catalog:
            plan = self._plan = _Plan(catalog)
        return plan

    def decide_one(self, subject: Subject, transaction: Transaction, mode: Mode) -> Decision | None:
        """One subject; the hot path for a not-listed subject does no I/O and no lock."""
        state = self._syncer.catalog
        now = self._clock()
        # A stale snapshot (rule 12) is no answer: the subject is looked up online.
        syncer = self._syncer
        snapshot = syncer.snapshot if now < syncer.fresh_until_at else None
        if state is not None and snapshot is not None:
            plan = self._plan_for(state.catalog)
            scenario = transaction.scenario
            if (
                scenario not in plan.clean
                and (subject.legal_representative is None or scenario not in plan.rep)
                and not snapshot.contains(subject.id)
            ):
                # Not listed, and no representative to check: the rulebook would find
                # nothing, so build its ALLOW directly.
                header = snapshot.header
                return trusted(Decision, {
                    "decision_id": new_decision_id(),
                    "outcome": Outcome.ALLOW,
                    "subject": subject,
                    "transaction": transaction,
                    "measures": [],
                    "matches": [],
                    "reasons": list(_ALLOW_REASONS),
                    "remedy": None,
                    "degraded": False,
                    "catalog_version": state.catalog.version,
                    "data_version": str(snapshot.version),
                    "decided_at": now,
                    # A reference to the state's header; the prefix is made when asked.
                    "receipt": SnapshotReceipt(header, subject.id) if header is not None
                    else None,
                }, set(_DECISION_FIELDS))
        return self.decide_many([subject], transaction, mode, now)[0]

    def decide_many(
        self, subjects: Sequence[Subject], transaction: Transaction, mode: Mode,
        now: dt.datetime | None = None, *, online: bool = False,
    ) -> list[Decision | None]:
        """Decide each subject with one lookup round trip for all that need one (plus one
        for legal representatives that only the service named).

        Args:
            online: look every subject up online with the service's signed receipt
                (§9.4), whatever the snapshot and cache say; when the service cannot
                give one, decide as usual (snapshot, cache, fallback).

        Raises:
            ServiceError: only in ``Mode.STRICT``, when the service cannot answer.
        """
        now = self._clock() if now is None else now
        state = self._syncer.catalog
        if state is None:
            if mode is Mode.LOCAL:
                return [None] * len(subjects)  # the caller goes to a thread, which waits
            if mode is Mode.STRICT:
                raise ServiceUnavailable("no measure catalogue is available yet")
            why = "尚无措施目录 / no measure catalogue yet"
            return [self._fall_back(s, transaction, now, None, why) for s in subjects]
        plan = self._plan_for(state.catalog)
        scenario = transaction.scenario
        want_rep = scenario in plan.rep
        clean = scenario in plan.clean
        reps: dict[str, Subject | None] = {}
        ids: list[str] = []
        clean_ids: set[str] = set()
        for s in subjects:
            ids.append(s.id)
            if clean:
                clean_ids.add(s.id)
            if want_rep and s.kind is SubjectKind.ORGANIZATION and s.legal_representative:
                reps[s.id] = s.legal_representative
                ids.append(s.legal_representative.id)
        answers, failure = self._resolve(ids, clean_ids, mode, now, online)
        if want_rep:
            found = {}
            for s in subjects:
                if s.kind is SubjectKind.ORGANIZATION and s.id not in reps:
                    rep = self._named_rep(answers.get(s.id))
                    reps[s.id] = rep
                    if rep is not None and rep.id not in answers:
                        found[rep.id] = rep
            if found:
                more, more_cause = self._resolve(list(found), set(), mode, now, online)
                answers.update(more)
                failure = failure or more_cause
        decisions: list[Decision | None] = []
        for s in subjects:
            rep = reps.get(s.id)
            a = answers.get(s.id)
            ra = answers.get(rep.id) if rep is not None else _CLEAR
            if a is None or ra is None:
                if mode is Mode.LOCAL:
                    decisions.append(None)
                    continue
                if mode is Mode.STRICT:
                    raise ServiceUnavailable(failure or "the list service did not answer")
                decisions.append(self._fall_back(s, transaction, now, state.catalog.version,
                                                 failure or "lookup failed"))
                continue
            decisions.append(self._decide(s, rep, a, ra, transaction, state.catalog, now))
        return decisions

    def _decide(
        self, s: Subject, rep: Subject | None, a: _Answer, ra: _Answer,
        transaction: Transaction, catalog: Catalog, now: dt.datetime,
    ) -> Decision:
        if rep is not None and s.legal_representative is None:
            s = s.model_copy(update={"legal_representative": rep})
        snapshot = self._syncer.snapshot
        stale = a.stale or ra.stale
        lookup, rep_lookup = a.lookup, ra.lookup if rep is not None else None
        entries = own_entries(lookup, s.id) if lookup else []
        rep_entries = representative_entries(rep_lookup, rep.id) if rep and rep_lookup else []
        clean_since = lookup.clean_since if lookup else None
        receipt = a.receipt
        if rep is not None and isinstance(receipt, ServiceReceipt) \
                and isinstance(ra.receipt, ServiceReceipt):
            receipt = receipt.with_related(Target.LEGAL_REPRESENTATIVE.value, ra.receipt)
        data_version = (lookup.data_version if lookup
                        else str(snapshot.version) if snapshot else None)
        scenario = transaction.scenario
        hidden = (withheld_targets(catalog, scenario, self._withheld(lookup, rep_lookup))
                  if self.withheld_causes or (lookup is not None and lookup.withheld)
                  or (rep_lookup is not None and rep_lookup.withheld) else ())
        # The rulebook's answer changes only with its inputs and the time signature, so a
        # listed subject checked again on the same cached answer reuses the content.
        sig = time_signature(entries, rep_entries, clean_since,
                             self._plan_for(catalog).clean_years.get(scenario, ()), now)
        key = (s.id, rep.id if rep is not None else None, scenario, sig)
        memo = self._memo.get(key)
        if (memo is not None and memo.catalog is catalog and memo.lookup is lookup
                and memo.rep_lookup is rep_lookup):
            made = memo.decision
            decision = trusted(Decision, {
                "decision_id": new_decision_id(), "outcome": made.outcome, "subject": s,
                "transaction": transaction, "measures": list(made.measures),
                "matches": list(made.matches), "reasons": list(made.reasons),
                "remedy": made.remedy, "degraded": stale or bool(hidden),
                "catalog_version": catalog.version,
                "data_version": data_version, "decided_at": to_cst_datetime(now),
                "receipt": receipt,
            }, set(_DECISION_FIELDS))
        else:
            decision = decide(
                subject=s,
                transaction=transaction,
                catalog=catalog,
                now=now,
                decision_id=new_decision_id(),
                entries=entries,
                representative_entries=rep_entries,
                clean_since=clean_since,
                data_version=data_version,
                degraded=stale,
                withheld=hidden,
                fallback=self._fallback.outcome(scenario),
            )
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = _Memo(catalog, lookup, rep_lookup, decision)
            if receipt is not None:
                decision = trusted(Decision, {**decision.__dict__, "receipt": receipt},
                                   {*decision.model_fields_set, "receipt"})
        if stale:
            # Decided on an answer kept from before the outage: verify it when possible.
            # (A withheld role alone is not queued: a re-check would be withheld again.)
            self._enqueue(decision)
        return decision

    def _withheld(self, lookup: SubjectLookup | None,
                  rep_lookup: SubjectLookup | None) -> list[Withheld]:
        """The withheld roles of both answers, as roles of this decision; each cause is
        logged once (and kept for status()) while it lasts."""
        roles = list(lookup.withheld) if lookup is not None else []
        if rep_lookup is not None:
            # The representative's own answer is about that person as its subject.
            roles += [w.model_copy(update={"role": Target.LEGAL_REPRESENTATIVE.value})
                      for w in rep_lookup.withheld if w.role == "subject"]
        for answer in (lookup, rep_lookup):
            if answer is not None:
                self._note_withheld(answer)
        return roles

    def _note_withheld(self, answer: SubjectLookup) -> None:
        for w in answer.withheld:
            if w.reason not in self.withheld_causes:
                self.withheld_causes[w.reason] = time.time()
                zh, en = withheld_cause(w.reason)
                logger.warning("the list service withholds entries from this key: %s / %s "
                               "(reason %r); checks whose scenario targets such a role get "
                               "the fallback, at least review, degraded", zh, en, w.reason)
        if self.withheld_causes and not answer.withheld and (
                answer.subject.kind is SubjectKind.PERSON
                or answer.subject.legal_representative is not None):
            # A person was shown in full: the key may now see persons.
            logger.info("the list service shows natural persons' entries to this key again")
            self.withheld_causes.clear()

    def _named_rep(self, answer: _Answer | None) -> Subject | None:
        if answer is None or answer.lookup is None:
            return None
        ref = answer.lookup.subject.legal_representative
        if ref is None:
            return None
        try:
            rep_id = validate_id_number(ref.id)
        except InvalidSubjectId:
            logger.warning("the service named a legal representative with an invalid id number")
            return None
        return Subject.model_construct(kind=SubjectKind.PERSON, id=rep_id, name=ref.name,
                                       legal_representative=None)

    def _resolve(
        self, ids: Iterable[str], clean_ids: set[str], mode: Mode, now: dt.datetime,
        online: bool = False,
    ) -> tuple[dict[str, _Answer], str | None]:
        snapshot = self._syncer.usable_snapshot_at(now)
        answers: dict[str, _Answer] = {}
        todo: list[str] = []
        if online and mode is not Mode.LOCAL:
            todo = list(dict.fromkeys(ids))
            try:
                return self._signed(todo), None
            except ServiceError as exc:
                # No signed answer: decided as usual below, without a service receipt.
                logger.warning("signed lookup of %d subject(s) failed: %s", len(todo), exc)
                todo = []
        for sid in dict.fromkeys(ids):
            if snapshot is not None and sid not in clean_ids and not snapshot.contains(sid):
                answers[sid] = _clear(snapshot, sid)
                continue
            cached = self._cache.get(sid)
            if cached is not None:
                answers[sid] = _Answer(cached)
            elif mode is not Mode.LOCAL:
                todo.append(sid)
        if not todo:
            return answers, None
        try:
            fresh = self._lookup.lookup_many(todo)
        except ServiceError as exc:
            self.last_error, self.last_error_at = f"lookup: {exc}", time.time()
            # While the breaker is open the outage was logged once already.
            logger.log(logging.DEBUG if isinstance(exc, CircuitOpen) else logging.WARNING,
                       "credit list lookup failed for %d subject(s): %s", len(todo), exc)
            old = self._stale_snapshot(now)
            for sid in todo:
                stale = self._cache.get_stale(sid) if mode is not Mode.STRICT else None
                if stale is not None:
                    answers[sid] = _Answer(stale, stale=True)
                elif mode is Mode.STRICT:
                    continue
                elif snapshot is not None and not snapshot.contains(sid):
                    # Only clean_since was wanted: decide without the clean-record reward.
                    answers[sid] = _clear(snapshot, sid)
                elif old is not None and not old.contains(sid):
                    # Stale data is better than none, but only as a degraded answer that
                    # is post-checked (rule 12).
                    answers[sid] = _STALE_CLEAR
            return answers, _cause(exc)
        for sid, answer in fresh.items():
            self._cache.put(sid, answer)
            answers[sid] = _Answer(answer)
        return answers, None

    def refresh(self, ids: Iterable[str]) -> dict[str, SubjectLookup]:
        """Look ``ids`` up now, one round trip per batch, and renew their cached answers:
        a re-screen must not decide on an answer cached before the change it follows.

        Raises:
            ServiceError: the service cannot answer.
        """
        fresh = self._lookup.lookup_many(list(dict.fromkeys(ids)))
        for sid, answer in fresh.items():
            self._cache.put(sid, answer)
        return fresh

    def _signed(self, ids: list[str]) -> dict[str, _Answer]:
        """Signed answers for ``ids``, each receipt verified against the service key and
        against its answer before anything uses it.

        Raises:
            ServiceError: the service cannot answer, or a receipt does not verify.
        """
        key = self._syncer.service_key
        if key is None:
            raise InvalidServiceData("no service key yet to verify receipts with")
        keys = {key_id(key): key}
        answers: dict[str, _Answer] = {}
        for sid, (lookup, raw) in self._lookup.lookup_signed(ids).items():
            receipt = ServiceReceipt.from_wire(raw)
            claims = verify_service_receipt(receipt, keys)
            shown = {"data_version": lookup.data_version,
                     "entries": [{"entry_id": e.entry_id, "status": e.status.value}
                                 for e in lookup.entries],
                     "withheld": [{"role": w.role} for w in lookup.withheld]}
            why = matches_answer(claims, shown, sid)
            if why is not None:
                raise InvalidReceipt(f"the receipt of a signed answer does not match it: {why}")
            self._cache.put(sid, lookup)
            answers[sid] = _Answer(lookup, receipt=receipt)
        return answers

    def _stale_snapshot(self, now: dt.datetime) -> SnapshotState | None:
        """The snapshot while it is stale but younger than ``max_stale``."""
        snapshot, age = self._syncer.snapshot, self._syncer.data_age()
        if snapshot is None or age is None or age > self._max_stale:
            return None
        return snapshot

    def _fall_back(
        self, s: Subject, transaction: Transaction, now: dt.datetime,
        catalog_version: str | None, cause: str,
    ) -> Decision:
        snapshot = self._syncer.snapshot
        decision = fallback_decision(
            subject=s,
            transaction=transaction,
            outcome=self._fallback.outcome(transaction.scenario),
            now=now,
            decision_id=new_decision_id(),
            catalog_version=catalog_version,
            data_version=str(snapshot.version) if snapshot else None,
            cause=cause,
        )
        self._enqueue(decision)
        return decision

    def _enqueue(self, decision: Decision) -> None:
        try:
            self._on_degraded(decision)
        except OutboxError as exc:
            # The decision stands; losing its post-check is logged loudly, not raised.
            self.last_error, self.last_error_at = f"post-check queue: {exc}", time.time()
            logger.error("cannot queue decision %s for a post-check: %s",
                         decision.decision_id, exc)
