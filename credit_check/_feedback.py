"""Builders of execution-feedback records (执行反馈, DESIGN §8): one per check, one per
reported case outcome, one per post-check (补查). Pure functions: no I/O, no clock.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from credit_check._exceptions import OutboxError
from credit_check._models import (
    Decision,
    FeedbackKind,
    FeedbackMatch,
    FeedbackRecord,
    FeedbackSubject,
    Outcome,
    Transaction,
    describe_validation_error,
    max_length,
)


def new_record_id() -> str:
    """A fresh record id: random (uuid4 hex), so ids never collide across processes.

    Made as ``uuid.uuid4().hex`` is, from 16 bytes of ``os.urandom`` with the version and
    variant bits set, without building a UUID object (a third of the cost).
    """
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def _subject(decision: Decision) -> FeedbackSubject:
    s = decision.subject
    return FeedbackSubject(kind=s.kind, id=s.id, name=s.name)


def _matches(decision: Decision) -> list[FeedbackMatch]:
    return [
        FeedbackMatch(entry_id=e.entry_id, list_code=e.list_code, list_kind=e.list_kind,
                      status=e.status, subject_id=e.subject_id)
        for e in decision.matches
    ]


def _build(**fields: object) -> FeedbackRecord:
    try:
        return FeedbackRecord.model_validate(fields)
    except ValidationError as exc:
        # Build the message from field locations only: the input may hold a person's id.
        raise OutboxError(
            describe_validation_error(exc, {}, "feedback record")
        ) from None


def decision_record(decision: Decision, *, department: str) -> FeedbackRecord:
    """The ``decision`` record written for every check.

    Args:
        decision: the Decision just made.
        department: the checking department (the API key's department).

    Raises:
        OutboxError: the decision cannot be expressed as a valid record (e.g. a field
            too long); the message names the field.
    """
    return _build(
        record_id=new_record_id(),
        kind=FeedbackKind.DECISION,
        decision_id=decision.decision_id,
        department=department,
        transaction=decision.transaction,
        subject=_subject(decision),
        matches=_matches(decision),
        measures=list(decision.measures),
        outcome=decision.outcome,
        degraded=decision.degraded,
        catalog_version=decision.catalog_version,
        data_version=decision.data_version,
        created_at=decision.decided_at,
        operator=decision.transaction.operator,
    )


_TRANSACTION_FIELDS = tuple(Transaction.model_fields)
# The limits a record adds to what a Decision already holds (each field's minimum is 1).
_DEPARTMENT_MAX = max_length(FeedbackRecord, "department")
_DECISION_ID_MAX = max_length(FeedbackRecord, "decision_id")
_SUBJECT_ID_MAX = max_length(FeedbackSubject, "id")
_NAME_MAX = max_length(FeedbackSubject, "name")


def decision_record_data(decision: Decision, *, department: str) -> dict[str, Any]:
    """The ``decision`` record as :func:`decision_record` would give it, in its JSON form
    without ``hmac`` (``record.model_dump(mode="json")`` less that key), built directly.

    Every field comes from a Decision, a Transaction and a Subject that pydantic validated
    already, so the record needs no second validation unless one of the few limits the
    record adds could fail (department, decision id, subject id and name lengths): then
    this takes the model's way, which raises :class:`OutboxError` naming the field.
    ``tests/test_feedback.py`` holds the two ways equal.
    """
    subject = decision.subject
    name = subject.name
    decision_id = decision.decision_id
    if not (0 < len(department) <= _DEPARTMENT_MAX and 0 < len(decision_id) <= _DECISION_ID_MAX
            and decision_id.isprintable() and 0 < len(subject.id) <= _SUBJECT_ID_MAX
            and (name is None or len(name) <= _NAME_MAX)):
        data = decision_record(decision, department=department).model_dump(mode="json")
        del data["hmac"]
        return data
    transaction = decision.transaction
    tx = {field: getattr(transaction, field) for field in _TRANSACTION_FIELDS}
    tx["scenario"] = transaction.scenario.value
    return {
        "record_id": new_record_id(),
        "kind": "decision",
        "decision_id": decision_id,
        "department": department,
        "transaction": tx,
        "subject": {"kind": subject.kind.value, "id": subject.id, "name": name},
        "matches": [{"entry_id": e.entry_id, "list_code": e.list_code,
                     "list_kind": e.list_kind.value, "status": e.status.value,
                     "subject_id": e.subject_id} for e in decision.matches],
        "measures": [m.model_dump(mode="json") for m in decision.measures],
        "outcome": decision.outcome.value,
        "degraded": decision.degraded,
        "catalog_version": decision.catalog_version,
        "data_version": decision.data_version,
        "created_at": to_jsonable_python(decision.decided_at),
        "result": None,
        "note": None,
        "operator": transaction.operator,
        "previous_outcome": None,
    }


def outcome_record(decision: FeedbackRecord, *, result: str, note: str | None,
                   operator: str | None, now: dt.datetime) -> FeedbackRecord:
    """The ``outcome`` record of ``report()``: the case result for an earlier decision.

    Args:
        decision: the decision-kind record (from ``Outbox.decision``).
        result: the case result, e.g. ``"rejected"``, ``"approved"``.
        note: free text from the operator.
        operator: who reports; defaults to the operator of the decision.
        now: the time of the report.

    Raises:
        OutboxError: ``result`` or ``note`` is too long or empty where it must not be.
    """
    if not result:
        raise OutboxError("report(): result must not be empty, e.g. 'approved' or 'rejected'")
    return _build(
        record_id=new_record_id(),
        kind=FeedbackKind.OUTCOME,
        decision_id=decision.decision_id,
        department=decision.department,
        transaction=decision.transaction,
        subject=decision.subject,
        outcome=decision.outcome,
        degraded=decision.degraded,
        catalog_version=decision.catalog_version,
        data_version=decision.data_version,
        created_at=now,
        result=result,
        note=note,
        operator=operator if operator is not None else decision.operator,
    )


def post_check_record(decision: Decision, *, previous: Outcome | Decision,
                      original_decision_id: str, department: str) -> FeedbackRecord:
    """The ``post_check`` record (补查) of a case first decided while the service was down.

    Args:
        decision: the new Decision, made with the service reachable.
        previous: the degraded decision's outcome (or that Decision itself).
        original_decision_id: the degraded decision's id, which this record is linked to.
        department: the checking department.
    """
    before = previous.outcome if isinstance(previous, Decision) else Outcome(previous)
    record = decision_record(decision, department=department)
    return record.model_copy(update={
        "kind": FeedbackKind.POST_CHECK,
        "decision_id": original_decision_id,
        "previous_outcome": before,
    })
