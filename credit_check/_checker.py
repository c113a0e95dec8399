"""The Checker (DESIGN §4): the SDK's front door. It owns the transport, the snapshot and
catalogue sync thread, the lookup cache, the feedback outbox and the post-check queue.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import os
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from credit_check._breaker import CircuitBreaker
from credit_check._cache import LookupCache
from credit_check._checker_types import CheckerStatus, DecisionGroup
from credit_check._crypto import feedback_key
from credit_check._datadir import DataDir
from credit_check._engine import Engine, Mode
from credit_check._exceptions import (
    ConfigurationError,
    InvalidArgument,
    OutboxError,
    UnknownDecision,
)
from credit_check._feedback import outcome_record, post_check_record
from credit_check._lifecycle._db import open_tables
from credit_check._lifecycle._follow import Lifecycle
from credit_check._lifecycle._index import INDEX_LOCK
from credit_check._lifecycle._ledger import Commitment
from credit_check._lifecycle._store import LifecycleStore
from credit_check._lifecycle._workdays import WorkdayCalendar
from credit_check._lookup import LookupClient
from credit_check._metrics import Instruments, Tracer
from credit_check._models import (
    CST,
    Catalog,
    Decision,
    FeedbackRecord,
    Subject,
    Transaction,
    max_length,
)
from credit_check._outbox import Outbox
from credit_check._outbox._backends import POST_CHECK_FILE, Records, open_records
from credit_check._outbox._pg_outbox import PgOutbox
from credit_check._outbox._process import SenderProcess, sender_config
from credit_check._postcheck import PostCheckQueue, PostCheckRunner
from credit_check._postcheck_pg import PgPostCheckQueue
from credit_check._readiness import Readiness, readiness, records_problem
from credit_check._settings import FallbackPolicy, Settings
from credit_check._shadow import ShadowRun, load_shadow
from credit_check._status import data_status
from credit_check._sync import Syncer
from credit_check._transport import Transport

logger = logging.getLogger("credit_check")

__all__ = ["POST_CHECK_FILE", "Checker"]
_DEPARTMENT_MAX = max_length(FeedbackRecord, "department")


def _now() -> dt.datetime:
    return dt.datetime.now(CST)


_SETTING_NAMES = frozenset(Settings.model_fields)


def _after_fork(ref: weakref.ReferenceType[Checker]) -> None:
    checker = ref()
    if checker is not None:
        checker._after_fork_in_child()


class Checker:
    """Checks subjects against the credit lists and records what was decided.

    Every setting is keyword-only and overrides the defaults; :meth:`from_env` reads
    ``CREDIT_CHECK_*`` variables instead. See :class:`~credit_check.Settings` for the
    setting names (``base_url``, ``api_key``, ``department``, ``data_dir``, ``fallback``,
    ``encryption_key``, ``service_public_key``, ``feedback``, ``listed_ttl``,
    ``not_listed_ttl``, ``max_stale``, ``cache_size``, ``sync_interval``, ``verify``,
    ``ca_bundle``, ``pilot_codes``, ``ready_timeout``, ``max_data_age``,
    ``breaker_cooldown``, ``watch_limit``, ``lift_retention_days``, ``workdays_file``, …).

    Behaviour worth knowing:

    * The constructor never blocks. Until the first catalogue arrives, :meth:`check` waits
      for it up to ``ready_timeout`` seconds (less once the service is known to be down);
      the local checks answer None instead. Without a fresh snapshot (none yet, or its
      newest signed answer older than ``max_data_age``) subjects are looked up online.
    * While the service is down a circuit breaker answers lookups with the fallback at
      once; one probe at a time tries again. See :meth:`status`.

    * Lookup answers are cached ``listed_ttl`` seconds (subjects with entries) or
      ``not_listed_ttl`` seconds (none, or a prefix collision); the last answer is kept up
      to ``max_stale`` seconds and used only while the service fails (the decision is then
      ``degraded`` and queued for a post-check). Entry periods are judged against the clock
      at every check, so a cached entry that expires stops applying at once.
    * Decisions of an open case (and grants reported with ``watch_until``) are watched:
      after each sync the follower process decides again those the changes touched and
      reports what became more severe (``on_rescreen``), surfaces measures resting on an
      entry removed as wrong, and reports commitments past their due date (see
      docs/lifecycle.md). ``check()`` itself writes nothing for this.
    * A degraded decision is queued for a post-check (补查). Once a sync succeeds, queued
      cases are re-checked; every result is recorded as a ``post_check`` feedback record
      (so the platform sees each degraded case closed out), and ``on_post_check`` is called
      when the outcome changed or the re-check found a hit.

    * ``region`` (``CREDIT_CHECK_REGION``, a six-digit GB/T 2260 code) is the default
      ``Transaction.region``: it selects the catalogue's provincial and city supplements.
    * A catalogue dry-run: with ``shadow_catalog`` (a :class:`Catalog`, its JSON as a dict
      or a JSON file; ``CREDIT_CHECK_SHADOW_CATALOG``), or while the service stages a
      catalogue (unless the setting is ``off``), every check is also decided on it and the
      differences are counted in :meth:`status` (``shadow_*``). Nothing else changes: the
      live decision stands and is the one recorded.

    Args:
        on_post_check: called with ``(original, new)`` when a post-check changes the
            outcome or finds a hit (in the one process of the data directory that holds
            the follower role).
        on_rescreen: called with ``(original, new)`` in the follower process when a
            watched decision, decided again after a sync, became more severe (or lost its
            green channel), and when a measure it applied rests on an entry removed as
            wrong (``new`` then shows the outcome without it). ``original`` is rebuilt
            from the decision's record: outcome, subject, case, measures and versions.
        sender: (also a setting, ``CREDIT_CHECK_SENDER``) how this process takes part in
            delivering the data directory's feedback while it holds the sender role:
            ``"process"`` (the default: in a child process, so delivery never holds the
            request threads' GIL), ``"thread"`` (in a thread of this process), or
            ``"off"`` (never here: for web workers when ``credit-check outbox run`` delivers
            as a sidecar). True and False mean ``"process"`` and ``"off"``.
        clock: the time source for decisions and cache ages (tests).
        start: start the background sync and feedback threads.
        settings: a complete :class:`Settings`; keyword settings override it.

    Raises:
        ConfigurationError: a setting is missing or malformed; the message names it.
    """

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        department: str | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        fallback: str | None = None,
        encryption_key: str | None = None,
        service_public_key: str | None = None,
        feedback: bool | None = None,
        listed_ttl: float | None = None,
        not_listed_ttl: float | None = None,
        max_stale: float | None = None,
        cache_size: int | None = None,
        sync_interval: float | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        lookup_retries: int | None = None,
        verify: bool | None = None,
        ca_bundle: str | None = None,
        pilot_codes: Iterable[str] | str | None = None,
        ready_timeout: float | None = None,
        max_data_age: float | None = None,
        breaker_cooldown: float | None = None,
        on_post_check: Callable[[Decision, Decision], None] | None = None,
        on_rescreen: Callable[[Decision, Decision], None] | None = None,
        watch_limit: int | None = None,
        lift_retention_days: float | None = None,
        workdays_file: str | os.PathLike[str] | None = None,
        clock: Callable[[], dt.datetime] | None = None,
        start: bool = True,
        sender: bool | str | None = None,
        outbox_url: str | None = None,
        region: str | None = None,
        shadow_catalog: Catalog | Mapping[str, Any] | str | os.PathLike[str] | None = None,
        settings: Settings | None = None,
    ) -> None:
        options: dict[str, Any] = {
            "base_url": base_url, "api_key": api_key, "department": department,
            "data_dir": data_dir, "fallback": fallback, "encryption_key": encryption_key,
            "service_public_key": service_public_key, "feedback": feedback,
            "listed_ttl": listed_ttl, "not_listed_ttl": not_listed_ttl,
            "max_stale": max_stale, "cache_size": cache_size, "sync_interval": sync_interval,
            "connect_timeout": connect_timeout, "read_timeout": read_timeout,
            "lookup_retries": lookup_retries, "verify": verify, "ca_bundle": ca_bundle,
            "sender": sender, "outbox_url": outbox_url,
            "pilot_codes": tuple(pilot_codes) if isinstance(pilot_codes, (list, set, frozenset))
            else pilot_codes,
            "ready_timeout": ready_timeout, "max_data_age": max_data_age,
            "breaker_cooldown": breaker_cooldown, "watch_limit": watch_limit,
            "lift_retention_days": lift_retention_days, "workdays_file": workdays_file,
            "region": region,
            "shadow_catalog": os.fspath(shadow_catalog)
            if isinstance(shadow_catalog, (str, os.PathLike)) else None,
        }
        if settings is None:
            settings = Settings.explicit(**options)
        elif any(v is not None for v in options.values()):
            merged = settings.model_dump() | {k: v for k, v in options.items() if v is not None}
            settings = Settings.explicit(**merged)
        self.settings = settings
        base_url, api_key, self._department = settings.require()
        policy = FallbackPolicy.parse(settings.fallback)
        self._clock = clock or _now
        self._pilot = settings.pilot_codes
        self._region = settings.region
        # A catalogue given as an object, else the setting's file ("off": no dry-run).
        source: Catalog | Mapping[str, Any] | str | None = (
            shadow_catalog if isinstance(shadow_catalog, (Catalog, Mapping))
            else None if settings.shadow_catalog in (None, "off") else settings.shadow_catalog)
        given = load_shadow(source) if source is not None else None
        self._closed = False
        self._started = start
        self._pid = os.getpid()
        self._transport = Transport(
            base_url, api_key,
            connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
            verify=settings.verify, ca_bundle=settings.ca_bundle,
            breaker=CircuitBreaker(cooldown=settings.breaker_cooldown),
        )
        if len(self._department) > _DEPARTMENT_MAX:
            raise ConfigurationError(
                f"CREDIT_CHECK_DEPARTMENT: at most {_DEPARTMENT_MAX} characters")
        self._outbox: Outbox | PgOutbox | None = None
        # Set by credit_check.enable_metrics / enable_tracing; None costs one test a check.
        self._metrics: Instruments | None = None
        self._tracer: Tracer | None = None
        self._queue: PostCheckQueue | PgPostCheckQueue | None = None
        self._records: Records | None = None
        self._lifecycle: Lifecycle | None = None
        self._sender_process: SenderProcess | None = None
        try:
            store = DataDir(settings.data_dir)
            key = settings.encryption_key
            cipher = store.cipher(key.get_secret_value() if key else None)
            self._syncer = Syncer(self._transport, store,
                                  pinned_key=settings.service_public_key,
                                  interval=settings.sync_interval,
                                  max_data_age=settings.max_data_age,
                                  on_success=self._after_sync,
                                  timer=(lambda: self._clock().timestamp()) if clock
                                  else time.time,
                                  follow_staged=given is None
                                  and settings.shadow_catalog != "off")
            self._syncer.load()
            timer = (lambda: self._clock().timestamp()) if clock else time.monotonic
            self._cache = LookupCache(
                listed_ttl=settings.listed_ttl, not_listed_ttl=settings.not_listed_ttl,
                max_stale=settings.max_stale, maxsize=settings.cache_size, timer=timer,
            )
            # The data directory, or the database of CREDIT_CHECK_OUTBOX_URL.
            self._records = open_records(settings, store, cipher, feedback_key(api_key))
            self._queue = self._records.queue
            self._engine = Engine(
                syncer=self._syncer, cache=self._cache,
                lookup=LookupClient(self._transport, retries=settings.lookup_retries),
                fallback=policy, on_degraded=self._queue_post_check, clock=self._clock,
                max_stale=settings.max_stale, region=settings.region,
            )
            self._shadow = ShadowRun(self._shadow_decide, self._syncer, given)
            # Read on every check: a plain attribute, refreshed after each sync.
            self._shadow_on = self._shadow.active
            self._outbox = self._records.outbox
            if self._outbox is not None and settings.sender != "off":
                delivery = self._outbox.attach_sender(self._transport)
                if settings.sender == "process" and isinstance(self._outbox, Outbox):
                    self._sender_process = SenderProcess(
                        self._outbox, sender_config(settings), delivery.start)
            self._post_checks = PostCheckRunner(
                self._queue, recheck=self._recheck,
                record=self._record_post_check if self._outbox is not None else None,
                role=self._records.follower, on_post_check=on_post_check,
            )
            if self._outbox is not None:  # watches are made from the decision records
                workdays = settings.workdays_file or store.file("workdays.json")
                self._lifecycle = Lifecycle(
                    store=LifecycleStore(open_tables(store.path, self._records.db), cipher),
                    outbox=self._outbox, engine=self._engine, syncer=self._syncer,
                    role=self._records.follower, department=self._department,
                    clock=self._clock, on_rescreen=on_rescreen,
                    watch_limit=settings.watch_limit,
                    lift_retention=settings.lift_retention_days * 86400.0,
                    calendar=WorkdayCalendar(Path(workdays) if settings.workdays_file
                                             or Path(workdays).exists() else None),
                    counted=self._count_rescreen,
                    index_lock=store.file(INDEX_LOCK) if isinstance(self._outbox, Outbox)
                    else None)
        except BaseException:
            self._release()
            raise
        # A weak reference: the hook cannot be unregistered and must not keep us alive.
        os.register_at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))
        if start:
            self._start_threads()

    @classmethod
    def from_env(cls, **overrides: Any) -> Checker:
        """A Checker configured from ``CREDIT_CHECK_*`` environment variables.

        Args:
            overrides: settings (and ``on_post_check``, ``clock``, ``start``) that take
                precedence over the environment.

        Raises:
            ConfigurationError: a variable is missing or malformed; the message names it.
        """
        given = {k: v for k, v in overrides.items() if k in _SETTING_NAMES}
        rest = {k: v for k, v in overrides.items() if k not in _SETTING_NAMES}
        return cls(settings=Settings.from_env(**given), **rest)

    # -- checks ------------------------------------------------------------------------

    def _subject(self, subject: Subject | str) -> Subject:
        if isinstance(subject, Subject):
            return subject
        if isinstance(subject, str):
            return Subject.parse(subject, allow=self._pilot)
        raise TypeError(f"subject must be a Subject or an identifier string, not "
                        f"{type(subject).__name__}")

    def check(self, subject: Subject | str, transaction: Transaction) -> Decision:
        """Check one subject for one transaction.

        A subject whose prefix is not in the snapshot is decided locally; a prefix hit is
        confirmed online (cached). If the service cannot answer and nothing usable is
        cached, the scenario's fallback applies (``degraded=True``) and a post-check is
        queued. The decision's record is on disk (the data directory's journal) before
        this returns; when it cannot be written, the decision is still made and enforced
        by the caller: :class:`OutboxError` carries it (DESIGN rule 13).

        Args:
            subject: a :class:`Subject`, or an identifier string (parsed by kind).
            transaction: the case; its scenario selects the measures.

        Returns:
            The Decision.

        Raises:
            InvalidSubjectId: the identifier is invalid (before any I/O).
            OutboxError: the decision could not be recorded durably; its ``decision``
                attribute holds the Decision (a DENY must still be refused).
        """
        if self._tracer is not None:
            with self._tracer.span("credit_check.check",
                                   scenario=str(transaction.scenario)) as span:
                decision = self._check(subject, transaction)
                span.set_attribute("outcome", str(decision.outcome))
                span.set_attribute("degraded", decision.degraded)
                return decision
        return self._check(subject, transaction)

    def _check(self, subject: Subject | str, transaction: Transaction) -> Decision:
        if self._pid != os.getpid():
            self._after_fork_in_child()
        parsed = self._subject(subject)
        if self._region is not None and transaction.region is None:
            transaction = self._in_region(transaction)
        if self._syncer.catalog is None:
            self._await_catalog()
        decision = self._engine.decide_one(parsed, transaction, Mode.NORMAL)
        assert decision is not None  # NORMAL mode always decides
        if self._metrics is not None:
            self._metrics.checked(decision)
        if self._outbox is not None:
            try:
                self._outbox.write_decision(decision, self._department)
            except OutboxError:
                if self._metrics is not None:
                    self._metrics.write_failures.inc()
                raise
        if self._shadow_on:
            self._shadow.compare(parsed, transaction, decision)
        return decision

    def check_local(self, subject: Subject | str, transaction: Transaction) -> Decision | None:
        """Decide from the snapshot and cache only, without any network call.

        For event loops: a None answer means a lookup is needed, so call :meth:`check` in a
        worker thread. A decision made here is recorded like any other; with the outbox in
        PostgreSQL the answer is always None, as recording it is a network round trip.

        Raises:
            InvalidSubjectId: the identifier is invalid.
            OutboxError: the decision could not be recorded durably (carrying it).
        """
        if isinstance(self._outbox, PgOutbox):
            return None  # its record is a database round trip: never in an event loop
        decision = self._decide_local(subject, transaction)
        if decision is not None and self._metrics is not None:
            self._metrics.checked(decision)
        if decision is not None and self._outbox is not None:
            try:
                self._outbox.write_decision(decision, self._department)
            except OutboxError:
                if self._metrics is not None:
                    self._metrics.write_failures.inc()
                raise
        if decision is not None and self._shadow_on:
            self._shadow.compare(decision.subject, decision.transaction, decision, local=True)
        return decision

    def _decide_local(self, subject: Subject | str, transaction: Transaction) -> Decision | None:
        if self._pid != os.getpid():
            self._after_fork_in_child()
        if self._region is not None and transaction.region is None:
            transaction = self._in_region(transaction)
        return self._engine.decide_one(self._subject(subject), transaction, Mode.LOCAL)

    def check_many(
        self, subjects: Iterable[Subject | str], transaction: Transaction, *,
        online: bool = False,
    ) -> DecisionGroup:
        """Check a batch or the members of a consortium bid, with one lookup round trip for
        every subject whose prefix is in the snapshot.

        Args:
            online: ask the service for a signed answer for every subject (查询凭证,
                DESIGN §9.4) — what a tender file should hold: each decision's
                ``receipt`` is then a :class:`~credit_check.ServiceReceipt`, verified on
                arrival and kept in its record. When the service cannot sign, the
                subjects are decided as usual and their receipts say so (a snapshot
                receipt, or none).

        Raises:
            InvalidSubjectId: any identifier is invalid (before any I/O).
            OutboxError: a decision could not be recorded durably; its ``decision``
                attribute holds the whole :class:`DecisionGroup`.
        """
        if self._pid != os.getpid():
            self._after_fork_in_child()
        parsed = [self._subject(s) for s in subjects]
        if self._region is not None and transaction.region is None:
            transaction = self._in_region(transaction)
        self._await_catalog()
        if self._tracer is not None:
            with self._tracer.span("credit_check.check_many", scenario=str(
                    transaction.scenario), subjects=len(parsed), online=online):
                group = DecisionGroup(d for d in self._engine.decide_many(
                    parsed, transaction, Mode.NORMAL, online=online) if d is not None)
        else:
            group = DecisionGroup(d for d in self._engine.decide_many(
                parsed, transaction, Mode.NORMAL, online=online) if d is not None)
        if self._metrics is not None:
            for d in group:
                self._metrics.checked(d)
        if self._outbox is not None:
            for d in group:
                try:
                    self._outbox.write_decision(d, self._department)
                except OutboxError as exc:
                    if self._metrics is not None:
                        self._metrics.write_failures.inc()
                    raise OutboxError(str(exc), decision=group) from exc
        if self._shadow_on:
            for s, d in zip(parsed, group, strict=True):
                self._shadow.compare(s, transaction, d)
        return group

    def _in_region(self, transaction: Transaction) -> Transaction:
        # The deployment's region (CREDIT_CHECK_REGION), recorded in the decision it selects
        # the supplements of.
        return transaction.model_copy(update={"region": self._region})

    def _shadow_decide(self, subject: Subject, transaction: Transaction, catalog: Catalog,
                       local: bool) -> Decision | None:
        return self._engine.decide_one(subject, transaction,
                                       Mode.LOCAL if local else Mode.SHADOW, catalog=catalog)

    def _queue_post_check(self, decision: Decision) -> None:
        assert self._queue is not None
        self._queue.add(decision)

    def _recheck(self, original: Decision) -> Decision:
        new = self._engine.decide_many([original.subject], original.transaction, Mode.STRICT)[0]
        assert new is not None  # STRICT mode decides or raises
        return new

    def _await_catalog(self) -> None:
        # Rule 12: before the first catalogue, wait for it (never in an event loop: the
        # local checks answer None instead). Only a running sync thread can bring it.
        if self._syncer.catalog is None and self._syncer.thread_alive:
            self._syncer.wake()
            self._syncer.wait_catalog(self.settings.ready_timeout)

    def _record_post_check(self, original: Decision, new: Decision) -> None:
        assert self._outbox is not None
        self._outbox.write(post_check_record(new, previous=original,
                                             original_decision_id=original.decision_id,
                                             department=self._department))
        if self._metrics is not None:
            changed = new.outcome is not original.outcome
            self._metrics.post_checks.labels(str(changed).lower()).inc()

    # -- feedback ----------------------------------------------------------------------

    def report(self, decision_id: str, result: str, note: str | None = None,
               operator: str | None = None, *, connection: Any = None,
               watch_until: dt.datetime | dt.date | None = None) -> str:
        """Report the case outcome for a decision (执行反馈), e.g. ``result="rejected"``.

        A final result (``approved``, ``granted``, ``rejected``, ``refused``,
        ``withdrawn``, ``closed``, …) ends the decision's watch; ``watch_until`` keeps a
        grant (an honour, a subsidy, a licence) watched until then instead, so a listing
        in that period is re-screened and reported.

        Args:
            connection: with an outbox in PostgreSQL (``CREDIT_CHECK_OUTBOX_URL``), the
                caller's open psycopg 3 connection (or Django's ``connection``) whose
                transaction the outcome record joins: it is kept if and only if that
                transaction commits, with the case's own change.

            watch_until: watch the decision until this moment (a date means its end of
                day, China Standard Time).

        Returns:
            The id of the outcome feedback record.

        Raises:
            UnknownDecision: this checker's outbox has no such decision (or feedback is off).
            ConfigurationError: ``connection`` with an outbox in the data directory.
            InvalidArgument: ``watch_until`` is not a date or time, or is in the past.
            OutboxError: the record could not be stored.
        """
        until = self._watch_until(watch_until)
        if connection is not None and not isinstance(self._outbox, PgOutbox):
            raise ConfigurationError(
                "report(connection=...) writes the outcome record in your transaction, so "
                "the outbox must be in that database: set CREDIT_CHECK_OUTBOX_URL "
                "(postgresql://...); with the outbox in the data directory leave "
                "connection out")
        if self._outbox is None:
            raise UnknownDecision(
                f"decision {decision_id!r}: feedback is off (feedback=False), so no decision "
                "is recorded to report on"
            )
        original = self._outbox.decision(decision_id)
        if original is None:
            raise UnknownDecision(f"decision {decision_id!r} was not made by this checker")
        record = outcome_record(original, result=result, note=note, operator=operator,
                                now=self._clock())
        if connection is not None:
            assert isinstance(self._outbox, PgOutbox)
            self._outbox.write_in(connection, record)
        else:
            self._outbox.write(record)
        record_id: str = record.record_id
        if self._lifecycle is not None:
            try:
                self._lifecycle.reported(original.model_dump(mode="json"), result, until)
            except OutboxError as exc:
                # The outcome is recorded (the platform has it); only following it failed.
                logger.error("the outcome %s of decision %s is recorded, but its watch could "
                             "not be updated: %s", record_id, decision_id, exc)
        return record_id

    def _count_rescreen(self, changed: bool) -> None:
        if self._metrics is not None:
            self._metrics.rescreens.labels(str(changed).lower()).inc()

    def _watch_until(self, value: dt.datetime | dt.date | None) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            until = value if value.tzinfo else value.replace(tzinfo=CST)
        elif isinstance(value, dt.date):
            until = dt.datetime.combine(value + dt.timedelta(days=1), dt.time(), CST)
        else:
            raise InvalidArgument(f"report(watch_until): a date or datetime, not "
                                  f"{type(value).__name__}")
        if until <= self._clock():
            raise InvalidArgument(f"report(watch_until): {value} is in the past")
        return until

    # -- the case lifecycle (事中) -------------------------------------------------------

    def _follow_up(self, what: str) -> Lifecycle:
        if self._lifecycle is None:
            raise UnknownDecision(f"{what}: feedback is off (feedback=False), so no decision "
                                  "is recorded to follow")
        return self._lifecycle

    def close_case(self, case_id: str) -> int:
        """The case is finished: its decisions are no longer watched (a grant watched until
        a date with ``report(watch_until=…)`` stays watched). Decisions that applied a
        measure are kept ``lift_retention_days`` so a measure resting on an entry later
        removed as wrong is still surfaced.

        Returns:
            How many watched decisions were closed (decisions not yet indexed are closed
            as they are).

        Raises:
            InvalidArgument: ``case_id`` is empty.
            OutboxError: the watch list cannot be written.
        """
        if not isinstance(case_id, str) or not case_id.strip():
            raise InvalidArgument("close_case(case_id): give the case (办件) id")
        return self._follow_up("close_case()").close_case(case_id)

    def commit(self, decision_id: str, items: Iterable[str], *,
               due: dt.date | str | None = None, working_days: int | None = None,
               operator: str | None = None) -> Commitment:
        """Record a commitment (信用承诺) made on a decision: materials to supply by a
        deadline under 容缺受理, or undertakings under 告知承诺. A ``commitment`` record
        goes to the platform; one still open the day after its due date is reported
        ``commitment_breached`` (违诺) by the follower, once.

        Args:
            decision_id: a green_channel or allow decision of this data directory.
            items: what is committed, e.g. the missing materials.
            due: the last day (a date or ``YYYY-MM-DD``); or
            working_days: working days from today on the official calendar (调休 and
                holidays counted; ``provisional`` when that year's schedule is unknown).
            operator: who recorded it.

        Raises:
            UnknownDecision: no such decision.
            InvalidArgument: a bad argument, or a decision that excludes commitments.
            OutboxError: the record could not be stored.
        """
        lifecycle = self._follow_up("commit()")
        assert self._outbox is not None
        original = self._outbox.decision(decision_id)
        if original is None:
            raise UnknownDecision(f"decision {decision_id!r} was not made by this checker")
        return lifecycle.ledger.commit(original.model_dump(mode="json"), items, due=due,
                                       working_days=working_days, operator=operator)

    def fulfil(self, commitment_id: str, items: Iterable[str],
               operator: str | None = None) -> Commitment:
        """Materials received (or undertakings met) for a commitment; it is fulfilled once
        every item is in. Records ``commitment_fulfilled``.

        Raises:
            UnknownCommitment: no such commitment.
            InvalidArgument: an item that is not the commitment's, or it is closed.
            OutboxError: the record could not be stored.
        """
        return self._follow_up("fulfil()").ledger.fulfil(commitment_id, items, operator)

    def waive(self, commitment_id: str, reason: str, operator: str | None = None
              ) -> Commitment:
        """The department no longer requires a commitment; records ``commitment_waived``
        with the reason.

        Raises:
            UnknownCommitment: no such commitment.
            InvalidArgument: no reason, or the commitment is closed.
            OutboxError: the record could not be stored.
        """
        return self._follow_up("waive()").ledger.waive(commitment_id, reason, operator)

    def commitments(self, subject: Subject | str | None = None) -> list[Commitment]:
        """The commitments of this data directory (of one subject), oldest first."""
        wanted = self._subject(subject).id if subject is not None else None
        return self._follow_up("commitments()").ledger.list(wanted)

    def checks_for_case(self, case_id: str) -> list[FeedbackRecord]:
        """Every feedback record kept for a case, oldest first (the query record)."""
        if self._outbox is None:
            return []
        return list(self._outbox.for_case(case_id))

    def case_report(self, case_id: str, *, output: str = "html") -> str:
        """The query record (查询记录) of a case: every record kept for it — each check,
        requests refused at the gate included, outcomes and post-checks — with receipts,
        persons' ids masked, and a verification digest (``credit-check report verify``).

        Args:
            output: ``"html"`` (printable, A4, Chinese first), ``"csv"`` or ``"json"``.

        Raises:
            ValueError: an unknown ``output``.
        """
        from credit_check._case_report import build, to_csv, to_html

        report = build(case_id, self.checks_for_case(case_id), department=self._department)
        if output == "html":
            return to_html(report)
        if output == "csv":
            return to_csv(report)
        if output == "json":
            return json.dumps(report, ensure_ascii=False, sort_keys=True)
        raise ValueError(f"output={output!r}: use 'html', 'csv' or 'json'")

    # -- state -------------------------------------------------------------------------

    def sync(self) -> bool:
        """Sync snapshot and catalogue now (and run due post-checks); True on success.

        While the circuit breaker is open this is the probe: it tries the service at once.
        """
        self._transport.breaker.expire_cooldown()
        ok = self._syncer.sync_once()
        if ok:
            self._after_sync()
        return ok

    def _after_sync(self) -> None:
        self._shadow_on = self._shadow.active  # a staged catalogue came or went
        self._post_checks.run()
        if self._lifecycle is not None:
            self._lifecycle.after_sync()

    @property
    def ready(self) -> bool:
        """Whether a measure catalogue is present, so checks are decided on it (a missing
        or stale snapshot only means subjects are looked up online)."""
        return self._syncer.ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until :attr:`ready` (or ``timeout`` seconds); returns :attr:`ready`."""
        return self._syncer.ready.wait(timeout)

    def status(self) -> CheckerStatus:
        """The snapshot and catalogue versions, data freshness, the breaker, what degrades
        decisions now, the last error and the queue sizes."""
        syncer, engine = self._syncer, self._engine
        snapshot, catalog = syncer.snapshot, syncer.catalog
        errors = [(syncer.last_error_at or 0.0, syncer.last_error),
                  (engine.last_error_at or 0.0, engine.last_error)]
        if syncer.last_success_at and (engine.last_error_at or 0.0) < syncer.last_success_at:
            errors.pop()  # a later good sync shows the service is back
        last = max((e for e in errors if e[1]), default=(0.0, None))[1]
        outbox = self._outbox.status() if self._outbox is not None else None
        assert self._queue is not None
        follow: dict[str, Any] = {}
        if self._lifecycle is not None:
            counts = self._lifecycle.store.counts()
            follow = {"watched": counts["watched"],
                      "watch_refused": int(self._lifecycle.store.meta("refused") or 0),
                      "commitments_open": counts["commitments_open"],
                      "commitments_breached": counts["commitments_breached"]}
        return CheckerStatus(
            ready=self.ready,
            snapshot_version=snapshot.version if snapshot is not None else None,
            snapshot_age=syncer.data_age() if snapshot is not None else None,
            catalog_version=catalog.catalog.version if catalog is not None else None,
            last_error=last,
            outbox_pending=outbox.pending if outbox is not None else None,
            post_check_pending=self._queue.size(),
            outbox_undecryptable=outbox.undecryptable if outbox is not None else 0,
            outbox_damaged=outbox.damaged if outbox is not None else (),
            outbox_dead_lettered=outbox.dead_lettered if outbox is not None else 0,
            sender_pid=outbox.sender_pid if outbox is not None else None,
            post_check_set_aside=self._queue.set_aside_count(),
            **data_status(syncer, engine, self._transport),
            **follow,
            **self._shadow.report(),
        )

    def readiness(self) -> Readiness:
        """Whether this instance should receive traffic (DESIGN §9.8): a catalogue is
        present and decision records can be written (probed by writing). Stale data is
        reported in the status but keeps the instance ready. The adapters' readiness
        endpoints answer with this (``credit_check.adapters.*_health``).
        """
        status = self.status()
        return readiness(status, records_problem(self._outbox, status))

    # -- threads, fork, close ----------------------------------------------------------

    def _start_threads(self) -> None:
        self._syncer.start()
        if self._sender_process is not None:
            self._sender_process.start()
        elif self._outbox is not None and self._outbox.sender is not None:
            self._outbox.sender.start()

    def _after_fork_in_child(self) -> None:
        # The parent's threads do not exist here and its locks may be held forever.
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._cache.reset_lock()
        self._syncer.after_fork_in_child()
        if self._queue is not None:
            self._queue.reset_lock()
        self._post_checks.reset_lock()
        if self._lifecycle is not None:
            self._lifecycle.reset_lock()
        if self._started and not self._closed:
            self._start_threads()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads, deliver what the outbox can within ``timeout`` seconds (the
        rest stays on disk for the next start), and release the resources."""
        if self._closed:
            return
        self._closed = True
        if self._transport.breaker.is_open:
            timeout = min(timeout, 1.0)  # the service is down: what is pending stays on disk
        self._syncer.stop(timeout)
        self._release(timeout)

    def _release(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        if self._sender_process is not None and isinstance(self._outbox, Outbox):
            # Our journal first, so the sender process imports all of it before it stops.
            self._outbox.journal.close()
            self._sender_process.close(timeout)
        if self._lifecycle is not None:
            self._lifecycle.store.tables.close()
        if self._records is not None:
            # A closed checker follows no more: another process of the directory takes over.
            self._records.follower.release()
        if self._outbox is not None:
            self._outbox.close(max(0.0, deadline - time.monotonic()))
        if self._records is not None:
            self._records.close()
        elif self._queue is not None:
            self._queue.close()
        self._transport.close()

    def __enter__(self) -> Checker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Checker(base_url={self._transport.base_url!r}, "
                f"department={self._department!r}, ready={self.ready})")

