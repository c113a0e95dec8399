"""The framework-free core of the middleware: from a matched rule and a request to a verdict.

The ASGI and WSGI middlewares and the Django, Flask and FastAPI adapters all go through
:class:`Guard`: extract and validate the identifiers, call the checker, and turn the
outcome into either "proceed, with this decision and header" or a reply to send instead.
"""

from __future__ import annotations

import functools
import logging
import threading
import traceback
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import anyio.to_thread
from pydantic import ValidationError

from credit_check._checker_types import DecisionGroup
from credit_check._exceptions import CreditCheckError, InvalidSubjectId, OutboxError
from credit_check._ids import mask_id, mask_ids_in
from credit_check._middleware import _respond as respond
from credit_check._middleware._body import BodyProblem, RequestData
from credit_check._middleware._reader import BodyRefused
from credit_check._middleware._respond import Reply
from credit_check._middleware._routes import ExtractionProblem, Extractor, Route
from credit_check._models import (
    Decision,
    Outcome,
    Subject,
    SubjectKind,
    Transaction,
)

logger = logging.getLogger("credit_check.middleware")

OnError = Literal["unavailable", "deny", "proceed", "review"]
_POLICIES = ("unavailable", "deny", "proceed")

ENVIRON_KEY = "credit_check.decision"
STATE_KEY = "credit_decision"
_MAX_ROUTES = 1024


class CheckerLike(Protocol):
    """What the middleware needs of a :class:`~credit_check.Checker`."""

    def check(self, subject: Subject | str, transaction: Transaction) -> Decision: ...
    def check_local(self, subject: Subject | str,
                    transaction: Transaction) -> Decision | None: ...
    def check_many(self, subjects: Iterable[Subject | str],
                   transaction: Transaction) -> DecisionGroup: ...


@dataclass(frozen=True, slots=True)
class Plan:
    """What to check: the subjects (several for a consortium) and the transaction."""

    route: Route
    subjects: tuple[Subject, ...]
    transaction: Transaction
    many: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with the request.

    Attributes:
        decision: the decision (or group) to attach, None when there is none.
        header: the ``X-Credit-Check`` value to add, None for none.
        reply: a response to send instead of calling the application, or None to proceed.
    """

    decision: Decision | DecisionGroup | None
    header: str | None
    reply: Reply | None


class Guard:
    """Extraction, checking and the outcome policy, shared by every middleware and adapter.

    Args:
        checker: the :class:`~credit_check.Checker` (or anything with its three methods).
        review: ``"proceed"`` lets a REVIEW through with the decision attached;
            ``"hold"`` answers 202 and does not call the application.
        shadow: decide and report (header, decision, log) but never block.
        on_error: what a guarded request gets when the check cannot be completed or its
            record cannot be written (DESIGN rule 13): ``"unavailable"`` (503),
            ``"deny"`` (403) or ``"proceed"`` (the app is called with
            ``X-Credit-Check: error``; logged at ERROR each time). A DENY that was decided
            is refused whatever this says. ``"review"``: deprecated alias of ``"proceed"``.
        department: the department handling cases, put on every transaction.
    """

    def __init__(self, checker: CheckerLike, *, review: Literal["proceed", "hold"] = "proceed",
                 shadow: bool = False, on_error: OnError = "unavailable",
                 department: str | None = None) -> None:
        if review not in ("proceed", "hold"):
            raise ValueError(f"review must be 'proceed' or 'hold', not {review!r}")
        if on_error == "review":
            warnings.warn(
                'on_error="review" is deprecated: it lets a request whose check failed '
                'through; say on_error="proceed" if that is meant, or keep the default '
                '"unavailable" (503)', DeprecationWarning, stacklevel=3)
            on_error = "proceed"
        if on_error not in _POLICIES:
            raise ValueError(f"on_error must be one of {', '.join(map(repr, _POLICIES))}, "
                             f"not {on_error!r}")
        if checker is None or not callable(getattr(checker, "check", None)):
            raise TypeError("checker must be a credit_check.Checker (or have its check methods)")
        self.checker = checker
        self.review = review
        self.shadow = shadow
        self.on_error: Literal["unavailable", "deny", "proceed"] = on_error
        self.department = department
        settings = getattr(checker, "settings", None)
        self._pilot: tuple[str, ...] = tuple(getattr(settings, "pilot_codes", ()) or ())
        self._lock = threading.Lock()
        # By id(route), with the route kept to tell a reused id apart, and the department.
        self._transactions: dict[int, tuple[Route, str | None, Transaction]] = {}
        self.errors = 0

    # -- extraction -------------------------------------------------------------------

    def plan(self, route: Route, request: RequestData) -> Plan | Verdict:
        """The subjects and transaction of a request, or a Verdict answering 400/415."""
        try:
            return self._plan(route, request)
        except _Refused as refused:
            if self.shadow:
                return Verdict(None, "invalid; shadow", None)
            return Verdict(None, None, refused.reply)

    def _plan(self, route: Route, request: RequestData) -> Plan:
        subjects: list[Subject] = []
        if route.subject is not None:
            raw = self._one(route.subject, request, required=route.members is None)
            if raw is not None:
                subject = self._parse(route.subject, raw)
                if route.legal_representative is not None:
                    rep = self._one(route.legal_representative, request, required=False)
                    if rep is not None and subject.kind is SubjectKind.ORGANIZATION:
                        person = self._parse(route.legal_representative, rep, person=True)
                        subject = subject.model_copy(update={"legal_representative": person})
                subjects.append(subject)
        if route.members is not None:
            values = _values(route.members, request)
            for i, raw in enumerate(values):
                subjects.append(self._parse(route.members, raw, index=i))
            if not subjects:
                raise _Refused(respond.missing_id(route.members.label))
        extra = {}
        if route.case_id is not None:
            extra["case_id"] = self._one(route.case_id, request, required=False)
        if route.item_code is not None:
            extra["item_code"] = self._one(route.item_code, request, required=False)
        return Plan(route, tuple(subjects), self._transaction(route, extra),
                    route.members is not None)

    def _transaction(self, route: Route, extra: dict[str, str | None]) -> Transaction:
        department = route.department or self.department
        plain = not any(extra.values())
        if plain:
            # Without a case id or item code a request's transaction is the route's own.
            cached = self._transactions.get(id(route))
            if cached is not None and cached[0] is route and cached[1] == department:
                return cached[2]
        try:
            transaction = Transaction(scenario=route.scenario, department=department, **extra)
        except ValidationError as exc:
            loc = str(exc.errors()[0]["loc"][0])
            ex = getattr(route, loc, None)
            label = ex.label if isinstance(ex, Extractor) else loc
            raise _Refused(respond.bad_field(label, exc.errors()[0]["msg"])) from None
        if plain:
            if len(self._transactions) >= _MAX_ROUTES:
                self._transactions.clear()  # routes made on the fly: never grow unbounded
            self._transactions[id(route)] = (route, department, transaction)
        return transaction

    def _one(self, ex: Extractor, request: RequestData, *, required: bool) -> str | None:
        values = _values(ex, request)
        if values:
            return values[0]
        if required:
            raise _Refused(respond.missing_id(ex.label))
        return None

    def _parse(self, ex: Extractor, raw: str, *, person: bool = False,
               index: int | None = None) -> Subject:
        try:
            return Subject.person(raw) if person else Subject.parse(raw, allow=self._pilot)
        except InvalidSubjectId as exc:
            label = ex.label if index is None else f"{ex.label}[{index}]"
            raise _Refused(respond.invalid_id(label, exc.problem, str(exc))) from None

    # -- checking ---------------------------------------------------------------------

    def evaluate(self, route: Route, request: RequestData) -> Verdict:
        """Extract, check in the calling thread and apply the policy."""
        plan = self.plan(route, request)
        return plan if isinstance(plan, Verdict) else self.decide(plan)

    async def evaluate_async(self, route: Route, request: RequestData) -> Verdict:
        """Extract, check without blocking the loop and apply the policy."""
        plan = self.plan(route, request)
        return plan if isinstance(plan, Verdict) else await self.decide_async(plan)

    def decide(self, plan: Plan) -> Verdict:
        """Check in the calling thread (WSGI, Django, Flask)."""
        try:
            if plan.many:
                result: Decision | DecisionGroup = self.checker.check_many(
                    plan.subjects, plan.transaction)
            else:
                result = self.checker.check(plan.subjects[0], plan.transaction)
        except Exception as exc:  # the host must never crash because the check failed
            return self.failed(plan, exc)
        return self.verdict(result)

    async def decide_async(self, plan: Plan) -> Verdict:
        """Check without blocking the event loop: the snapshot answer (decided and recorded
        in microseconds) in the loop, network work (a lookup, or any consortium) in a
        worker thread."""
        verdict = self.decide_local(plan)
        return verdict if verdict is not None else await self.decide_in_thread(plan)

    def decide_local(self, plan: Plan) -> Verdict | None:
        """The verdict from the snapshot and cache alone (safe in an event loop), or None
        when a lookup or a consortium needs :meth:`decide_in_thread`."""
        if plan.many:
            return None
        try:
            local = self.checker.check_local(plan.subjects[0], plan.transaction)
        except Exception as exc:  # the host must never crash because the check failed
            return self.failed(plan, exc)
        return None if local is None else self.verdict(local)

    async def decide_in_thread(self, plan: Plan) -> Verdict:
        """Check in a worker thread (a lookup, or any consortium)."""
        try:
            if plan.many:
                result: Decision | DecisionGroup = await anyio.to_thread.run_sync(
                    functools.partial(self.checker.check_many, plan.subjects, plan.transaction))
            else:
                result = await anyio.to_thread.run_sync(
                    functools.partial(self.checker.check, plan.subjects[0], plan.transaction))
        except Exception as exc:  # the host must never crash because the check failed
            return self.failed(plan, exc)
        return self.verdict(result)

    def verdict(self, result: Decision | DecisionGroup) -> Verdict:
        """Apply the outcome policy to a decision (or a consortium's group)."""
        outcome = result.outcome
        header = respond.header_value(result, shadow=self.shadow)
        if self.shadow:
            if outcome is Outcome.DENY or outcome is Outcome.REVIEW:
                logger.info("shadow mode: %s would have applied (%s)", outcome.value, header)
            return Verdict(result, header, None)
        if outcome is Outcome.DENY:
            return Verdict(result, header, respond.denied(result))
        if outcome is Outcome.REVIEW and self.review == "hold":
            return Verdict(result, header, respond.held(result))
        return Verdict(result, header, None)

    def failed(self, plan: Plan | None, exc: Exception, *, where: str | None = None) -> Verdict:
        """The verdict when the check raised, or anything the edges run in the host's
        request raised (``plan`` None: their fence): logged at ERROR (ids masked) and
        counted, then DESIGN rule 13. A body the reader refused (413, 400) is answered as
        such: no failure.

        A decision that was made but could not be recorded (an ``OutboxError`` carrying
        it) is enforced: a DENY is refused with the usual 403, and with ``"proceed"`` a
        held REVIEW is held; everything else follows ``on_error``. Shadow mode never
        blocks.
        """
        if isinstance(exc, BodyRefused):
            return Verdict(None, None, exc.reply)
        with self._lock:
            self.errors += 1
        made = exc.decision if isinstance(exc, OutboxError) else None
        if not isinstance(made, Decision | DecisionGroup):
            made = None
        unrecorded = isinstance(exc, OutboxError)
        held = None if made is None or self.shadow else self.verdict(made).reply
        if self.shadow:
            verdict, action = Verdict(made, "error; shadow", None), "shadow mode: goes on"
        elif made is not None and held is not None and (
                made.outcome is Outcome.DENY or self.on_error == "proceed"):
            # The decision blocks (a DENY; with "proceed", a held REVIEW too): it holds.
            verdict = Verdict(made, respond.header_value(made), held)
            action = f"the {made.outcome.value} decided holds ({held.status}), unrecorded"
        elif self.on_error == "proceed":
            verdict = Verdict(made, "error", None)
            action = "on_error='proceed': the request goes on unchecked"
        elif self.on_error == "deny":
            verdict = Verdict(made, "error", respond.refused(unrecorded=unrecorded))
            action = "on_error='deny': refused (403)"
        else:
            verdict = Verdict(made, "error", respond.unavailable(unrecorded=unrecorded))
            action = "on_error='unavailable': answered 503"
        _log_failure(plan, exc, where, action)
        return verdict


class _Refused(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def _log_failure(plan: Plan | None, exc: Exception, where: str | None, action: str) -> None:
    if plan is not None:
        if plan.route.path != "*":  # a view's own guard has no path of its own
            where = f"{plan.route.method} {plan.route.path}"
        ids = [s.id for s in plan.subjects if s.kind is SubjectKind.PERSON]
        ids += [s.legal_representative.id for s in plan.subjects if s.legal_representative]
        subjects = ", ".join(s.masked_id for s in plan.subjects)
        text = scrub(f"{type(exc).__name__}: {exc}", ids)
    else:
        subjects = "?"
        text = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, CreditCheckError):
        # Not one of the errors a check may raise: a bug, whose traceback helps.
        text = "".join(traceback.format_exception(exc)).rstrip()
    logger.error("credit check failed on %s for %s; %s: %s",
                 mask_ids_in(where or "a guarded view"),
                 subjects, action, mask_ids_in(text))


def _values(ex: Extractor, request: RequestData) -> list[str]:
    try:
        return ex.extract(request)
    except BodyProblem as exc:
        raise _Refused(respond.bad_body(exc.status, str(exc), exc.expected)) from None
    except ExtractionProblem as exc:
        raise _Refused(respond.bad_field(ex.label, str(exc))) from None


def scrub(text: str, ids: Sequence[str]) -> str:
    """``text`` with every identifier in ``ids`` masked, for logs."""
    for raw in ids:
        if raw and len(raw) > 10:
            text = text.replace(raw, mask_id(raw))
    return text
