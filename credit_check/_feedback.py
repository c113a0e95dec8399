"""Builders of execution-feedback records (执行反馈, DESIGN §8): one per check, one per
reported case outcome, one per post-check (补查). Pure functions: no I/O, no clock.
(The request path writes a decision's record in a compact form instead; the outbox's
``_codec`` turns it into exactly what :func:`decision_record` gives.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

from pydantic import ValidationError

from credit_check._exceptions import OutboxError
from credit_check._models import (
    Decision,
    FeedbackKind,
    FeedbackMatch,
    FeedbackRecord,
    FeedbackSubject,
    Outcome,
    describe_validation_error,
)

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:credit-check:feedback-record")
_NAMESPACE_BYTES = _NAMESPACE.bytes


def new_record_id() -> str:
    """A fresh random record id (uuid4 hex): for records a decision may have several of
    (case outcomes)."""
    return uuid.uuid4().hex


def record_id_for(kind: str, decision_id: str) -> str:
    """The id of the one record of ``kind`` a decision has (``decision``, ``post_check``):
    a name-based UUID (version 5) of the decision id, so a record written twice (a re-run
    after a crash, two processes post-checking one decision) is one record to the service,
    which de-duplicates by id."""
    # uuid.uuid5(_NAMESPACE, name).hex, without building two UUID objects per record.
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + f"{kind}:{decision_id}".encode(),
                                 usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50
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


def build_record(**fields: object) -> FeedbackRecord:
    """A record validated from its fields (any kind).

    Raises:
        OutboxError: a field is invalid; the message names it (never its value).
    """
    return _build(**fields)


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
        record_id=record_id_for("decision", decision.decision_id),
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
        receipt=_receipt(decision),
    )


def _receipt(decision: Decision) -> dict[str, object] | None:
    # Only a receipt the service takes back travels in the record (see _receipts).
    receipt = decision.receipt
    return receipt.to_dict() if receipt is not None and receipt.recordable else None


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
        "record_id": record_id_for("post_check", original_decision_id),
        "kind": FeedbackKind.POST_CHECK,
        "decision_id": original_decision_id,
        "previous_outcome": before,
    })
