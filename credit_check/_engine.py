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
from typing import Any

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
from credit_check._lookup import LookupClient, own_entries, via_entries
from credit_check._models import (
    Catalog,
    Decision,
    Effect,
    Measure,
    Outcome,
    RelatedPerson,
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
    PersonEntries,
    clean_years,
    decide,
    fallback_decision,
    time_signature,
    unknown_scenario_decision,
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
    SHADOW = "shadow"  # network allowed; failures None; nothing queued or noted (dry-run)


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
    person_lookups: tuple[SubjectLookup | None, ...]
    decision: Decision


# (role, person) of an organisation, as checked for one decision
Named = list[tuple[str, Subject]]
_NOBODY: list[Any] = []  # shared, never changed: no related person
PLANS_KEPT = 4  # the live catalogue, a shadow one, and the ones they replaced
MEASURE_SETS_KEPT = 1024  # (scenario, region) selections kept per plan


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

    __slots__ = ("catalog", "clean", "clean_years", "measures", "roles", "scenarios")

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.scenarios = catalog.scenario_codes()
        self.clean = frozenset(
            s for m in catalog.measures
            if m.effect is Effect.GREEN_CHANNEL and m.clean_years is not None
            for s in m.scenarios
        )
        self.clean_years = {s: clean_years(catalog, s) for s in self.clean}
        # scenario -> the roles whose persons are looked up (None: every role, for a
        # measure whose target this version does not know)
        roles: dict[str, set[str] | None] = {}
        for m in catalog.measures:
            if m.target is Target.SUBJECT:
                continue
            for s in m.scenarios:
                held = roles.setdefault(s, set())
                if held is not None:
                    if isinstance(m.target, Target):
                        held.add(m.target)
                    else:
                        roles[s] = None
        self.roles = {s: frozenset(r) if r is not None else None for s, r in roles.items()}
        self.measures: dict[tuple[str, str | None], list[Measure]] = {}

    def measures_for(self, scenario: str, region: str | None) -> list[Measure]:
        key = (scenario, region)
        found = self.measures.get(key)
        if found is None:
            if len(self.measures) >= MEASURE_SETS_KEPT:
                self.measures.clear()
            found = self.measures[key] = self.catalog.measures_for(scenario, region)
        return found


def _with_persons(s: Subject, persons: Named) -> Subject:
    """The subject with the persons the service named for it, so the decision shows whom
    it checked."""
    rep = s.legal_representative
    related = list(s.related_persons)
    for role, p in persons:
        if role == Target.LEGAL_REPRESENTATIVE:
            rep = rep or p
        elif not any(r.role == role and r.person.id == p.id for r in related):
            related.append(RelatedPerson.model_construct(role=role, person=p))
    if rep is s.legal_representative and len(related) == len(s.related_persons):
        return s
    return s.model_copy(update={"legal_representative": rep, "related_persons": tuple(related)})


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
        region: str | None = None,
    ) -> None:
        self._syncer = syncer
        self._cache = cache
        self._lookup = lookup
        self._fallback = fallback
        self._on_degraded = on_degraded
        self._clock = clock
        self._max_stale = max_stale
        self.region = region
        self._plans: dict[int, _Plan] = {}
        self._plan: _Plan | None = None
        self._memo: dict[tuple[object, ...], _Memo] = {}
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        # Withholding reasons seen (rule 11) -> when first seen; cleared when a person is
        # shown in full again.
        self.withheld_causes: dict[str, float] = {}
        # Scenario codes neither known nor in the catalogue -> when first seen.
        self.unknown_scenarios: dict[str, float] = {}

    def _plan_for(self, catalog: Catalog) -> _Plan:
        plan = self._plan
        if plan is not None and plan.catalog is catalog:
            return plan  # the usual case: the catalogue the last check used
        plan = self._plans.get(id(catalog))
        if plan is None or plan.catalog is not catalog:
            if len(self._plans) >= PLANS_KEPT:
                self._plans.clear()
            plan = self._plans[id(catalog)] = _Plan(catalog)
            live = self._syncer.catalog
            if live is not None and live.catalog is catalog:
                self._note(catalog)
        live = self._syncer.catalog
        if live is not None and live.catalog is catalog:
            self._plan = plan  # not a shadow catalogue's: the two would take turns here
        return plan

    def _note(self, catalog: Catalog) -> None:
        # Once per catalogue: what this version cannot apply, and supplements that no
        # case will get without a region.
        for m, problem in catalog.unsupported():
            logger.warning("catalogue %s: measure %s (%s) cannot be applied by this version "
                           "(%s); a check whose entries it matches is decided at least "
                           "review, degraded (rule 11): upgrade credit-check",
                           catalog.version, m.code, m.name, problem)
        regional = sorted({x.region for x in catalog.layers if x.region})
        if regional and self.region is None:
            # INFO, not WARNING: a deployment outside every supplement's region is right
            # to set none (status().region says which applies).
            logger.info("catalogue %s has supplements for the regions %s, but no region "
                           "is set: a case without Transaction.region gets the national base "
                           "only (set CREDIT_CHECK_REGION)", catalog.version,
                           ", ".join(regional))

    def decide_one(self, subject: Subject, transaction: Transaction, mode: Mode,
                   catalog: Catalog | None = None) -> Decision | None:
        """One subject; the hot path for a not-listed subject does no I/O and no lock.

        Args:
            catalog: decide on this catalogue instead of the synced one (a dry-run).
        """
        state = self._syncer.catalog
        now = self._clock()
        # A stale snapshot (rule 12) is no answer: the subject is looked up online.
        syncer = self._syncer
        snapshot = syncer.snapshot if now < syncer.fresh_until_at else None
        if state is not None and snapshot is not None:
            using = state.catalog if catalog is None else catalog
            plan = self._plan_for(using)
            scenario = transaction.scenario
            if (
                scenario not in plan.clean
                and scenario in plan.scenarios
                and ((subject.legal_representative is None and not subject.related_persons)
                     or scenario not in plan.roles)
                and not snapshot.contains(subject.id)
            ):
                # Not listed, and no related person to check: the rulebook would find
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
                    "catalog_version": using.version,
                    "data_version": str(snapshot.version),
                    "decided_at": now,
                    # A reference to the state's header; the prefix is made when asked.
                    "receipt": SnapshotReceipt(header, subject.id) if header is not None
                    else None,
                }, set(_DECISION_FIELDS))
        return self.decide_many([subject], transaction, mode, now, catalog)[0]

    def decide_many(
        self, subjects: Sequence[Subject], transaction: Transaction, mode: Mode,
        now: dt.datetime | None = None, catalog: Catalog | None = None, *,
        online: bool = False,
    ) -> list[Decision | None]:
        """Decide each subject with one lookup round trip for all that need one (plus one
        for related persons that only the service named).

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
            if mode in (Mode.LOCAL, Mode.SHADOW):
                return [None] * len(subjects)  # the caller goes to a thread, which waits
            if mode is Mode.STRICT:
                raise ServiceUnavailable("no measure catalogue is available yet")
            why = "尚无措施目录 / no measure catalogue yet"
            return [self._fall_back(s, transaction, now, None, why) for s in subjects]
        using = state.catalog if catalog is None else catalog
        plan = self._plan_for(using)
        scenario = transaction.scenario
        quiet = catalog is not None or mode is Mode.SHADOW  # a dry-run records nothing
        if scenario not in plan.scenarios:
            return [self._unknown_scenario(s, transaction, using, now, quiet) for s in subjects]
        want = scenario in plan.roles
        roles = plan.roles[scenario] if want else None
        clean = scenario in plan.clean
        named: dict[str, Named] = {}
        ids: list[str] = []
        clean_ids: set[str] = set()
        for s in subjects:
            ids.append(s.id)
            if clean:
                clean_ids.add(s.id)
            if want and s.kind is SubjectKind.ORGANIZATION:
                mine = [(r, p) for r, p in s.persons if roles is None or r in roles]
                if mine:
                    named[s.id] = mine
                    ids += [p.id for _, p in mine]
        answers, failure = self._resolve(ids, clean_ids, mode, now, online)
        if want:
            found: dict[str, Subject] = {}
            for s in subjects:
                if s.kind is not SubjectKind.ORGANIZATION:
                    continue
                given = {r for r, _ in named.get(s.id, ())}
                extra = [(r, p) for r, p in self._service_persons(answers.get(s.id))
                         if r not in given and (roles is None or r in roles)]
                if extra:
                    named.setdefault(s.id, []).extend(extra)
                    found.update((p.id, p) for _, p in extra if p.id not in answers)
            if found:
                more, more_cause = self._resolve(list(found), set(), mode, now, online)
                answers.update(more)
                failure = failure or more_cause
        decisions: list[Decision | None] = []
        for s in subjects:
            persons = named.get(s.id, _NOBODY)
            a = answers.get(s.id)
            person_answers = [answers.get(p.id) for _, p in persons] if persons else _NOBODY
            if a is None or (persons and None in person_answers):
                if mode in (Mode.LOCAL, Mode.SHADOW):
                    decisions.append(None)
                    continue
                if mode is Mode.STRICT:
                    raise ServiceUnavailable(failure or "the list service did not answer")
                decisions.append(self._fall_back(s, transaction, now, using.version,
                                                 failure or "lookup failed"))
                continue
            decisions.append(self._decide(s, persons, a, person_answers,  # type: ignore[arg-type]
                                          transaction, using, now, plan, quiet))
        return decisions

    def _unknown_scenario(self, s: Subject, transaction: Transaction, catalog: Catalog,
                          now: dt.datetime, quiet: bool) -> Decision:
        if quiet:
            return unknown_scenario_decision(
                subject=s, transaction=transaction, catalog=catalog, now=now,
                decision_id=new_decision_id(), data_version=None,
                fallback=self._fallback.outcome(transaction.scenario))
        code = transaction.scenario
        if code not in self.unknown_scenarios:
            self.unknown_scenarios[code] = time.time()
            logger.warning("scenario %r is neither a known scenario nor one the catalogue %s "
                           "names: such checks get the fallback, at least review, degraded "
                           "(a typo in the scenario code?)", code, catalog.version)
        snapshot = self._syncer.snapshot
        return unknown_scenario_decision(
            subject=s, transaction=transaction, catalog=catalog, now=now,
            decision_id=new_decision_id(),
            data_version=str(snapshot.version) if snapshot else None,
            fallback=self._fallback.outcome(code))

    def _decide(
        self, s: Subject, persons: Named, a: _Answer, person_answers: list[_Answer],
        transaction: Transaction, catalog: Catalog, now: dt.datetime, plan: _Plan,
        quiet: bool,
    ) -> Decision:
        snapshot = self._syncer.snapshot
        lookup = a.lookup
        entries = own_entries(lookup, s.id) if lookup else []
        subject_via = via_entries(lookup, s.id) if lookup and s.kind is SubjectKind.PERSON \
            else []
        others = [e for e, _ in subject_via] if subject_via else []
        if persons:
            s = _with_persons(s, persons)
            stale = a.stale or any(pa.stale for pa in person_answers)
            lookups = tuple(pa.lookup for pa in person_answers)
            people = [PersonEntries(role, p, own_entries(pl, p.id) if pl else [],
                                    via_entries(pl, p.id) if pl else [])
                      for (role, p), pl in zip(persons, lookups, strict=True)]
            others += [e for p in people for e in p.entries]
            others += [e for p in people for e, _ in p.via]
            named = tuple((r, p.id) for r, p in persons)
            withheld = any(pl is not None and pl.withheld for pl in lookups)
        else:
            # The usual case (no related person to check), without the generators.
            stale, lookups, people, named, withheld = a.stale, (), [], (), False
        clean_since = lookup.clean_since if lookup else None
        receipt = a.receipt
        if persons and isinstance(receipt, ServiceReceipt):
            # Each related person's signed answer joins the subject's receipt, by role.
            for (role, _), pa in zip(persons, person_answers, strict=True):
                if isinstance(pa.receipt, ServiceReceipt):
                    receipt = receipt.with_related(role, pa.receipt)
        data_version = (lookup.data_version if lookup
                        else str(snapshot.version) if snapshot else None)
        scenario = transaction.scenario
        hidden = (withheld_targets(catalog, scenario, self._withheld(lookup, persons, lookups,
                                                                     quiet=quiet))
                  if self.withheld_causes or (lookup is not None and lookup.withheld)
                  or withheld else ())
        # The rulebook's answer changes only with its inputs and the time signature, so a
        # listed subject checked again on the same cached answer reuses the content.
        sig = time_signature(entries, others, clean_since,
                             plan.clean_years.get(scenario, ()), now)
        # The catalogue is part of the key: a dry-run alternates two of them.
        key = (id(catalog), s.id, named, scenario, transaction.region, stale, sig)
        memo = self._memo.get(key)
        if (memo is not None and memo.catalog is catalog and memo.lookup is lookup
                and (not lookups or (len(memo.person_lookups) == len(lookups) and all(
                    x is y for x, y in zip(memo.person_lookups, lookups, strict=True))))):
            made = memo.decision
            decision = trusted(Decision, {
                "decision_id": new_decision_id(), "outcome": made.outcome, "subject": s,
                "transaction": transaction, "measures": list(made.measures),
                "matches": list(made.matches), "reasons": list(made.reasons),
                "remedy": made.remedy, "degraded": made.degraded,
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
                clean_since=clean_since,
                data_version=data_version,
                degraded=stale,
                withheld=hidden,
                fallback=self._fallback.outcome(scenario),
                persons=people,
                subject_via=subject_via,
                measures=plan.measures_for(scenario, transaction.region),
            )
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            self._memo[key] = _Memo(catalog, lookup, lookups, decision)
            if receipt is not None:
                decision = trusted(Decision, {**decision.__dict__, "receipt": receipt},
                                   {*decision.model_fields_set, "receipt"})
        if stale and not quiet:
            # Decided on an answer kept from before the outage: verify it when possible.
            # (A withheld role alone is not queued: a re-check would be withheld again.)
            self._enqueue(decision)
        return decision

    def _withheld(self, lookup: SubjectLookup | None, persons: Named,
                  lookups: tuple[SubjectLookup | None, ...], *, quiet: bool) -> list[Withheld]:
        """The withheld roles of all answers, as roles of this decision; each cause is
        logged once (and kept for status()) while it lasts."""
        roles = list(lookup.withheld) if lookup is not None else []
        for (role, _), pl in zip(persons, lookups, strict=True):
            if pl is not None:
                # A related person's own answer is about that person as its subject.
                roles += [w.model_copy(update={"role": role})
                          for w in pl.withheld if w.role == "subject"]
        if not quiet:
            for answer in (lookup, *lookups):
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
                or answer.subject.legal_representative is not None
                or answer.subject.related_persons):
            # A person was shown in full: the key may now see persons.
            logger.info("the list service shows natural persons' entries to this key again")
            self.withheld_causes.clear()

    def _service_persons(self, answer: _Answer | None) -> Named:
        """The related persons the service names for an organisation, by role."""
        if answer is None or answer.lookup is None:
            return []
        info = answer.lookup.subject
        refs = [(str(Target.LEGAL_REPRESENTATIVE), info.legal_representative.id,
                 info.legal_representative.name)] if info.legal_representative else []
        refs += [(r.role, r.id, r.name) for r in info.related_persons]
        out: Named = []
        seen: set[tuple[str, str]] = set()
        for role, raw, name in refs:
            try:
                pid = validate_id_number(raw)
            except InvalidSubjectId:
                logger.warning("the service named a %s with an invalid id number", role)
                continue
            if (role, pid) not in seen:
                seen.add((role, pid))
                out.append((role, Subject.model_construct(
                    kind=SubjectKind.PERSON, id=pid, name=name, legal_representative=None)))
        return out

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
