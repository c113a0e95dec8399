"""Builders of the lifecycle's feedback records (DESIGN §9.6): ``rescreen``,
``case_opened`` and the commitment kinds. Pure functions: no I/O, no clock.

A record that must exist once gets an id derived from what makes it unique
(``_feedback.record_id_for``), so a repeat — a restart, another follower after a crash —
is one record to the service, which de-duplicates by id.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from credit_check._feedback import build_record, decision_record, new_record_id, record_id_for
from credit_check._models import Decision, FeedbackKind, FeedbackRecord, Outcome, Subject


def rescreen_record(original: dict[str, Any], new: Decision, *, department: str,
                    lifted: list[str] | None = None) -> FeedbackRecord:
    """The ``rescreen`` record of a watched decision decided again: the new matches,
    measures and outcome, linked to the original decision; ``lift`` when it surfaces
    measures taken on entries removed as wrong.

    Args:
        original: the decision's record (JSON form) as watched so far.
        new: the decision made now under the current catalogue and data.
        department: the checking department.
        lifted: the entries removed as wrong that the original decision's measures used.
    """
    base = decision_record(new, department=department).model_dump(mode="json")
    base.pop("receipt", None)  # the decision's own record carries it, where it is taken
    unique = f"{original['decision_id']}:{new.data_version}" + (":lift" if lifted else "")
    base.update(record_id=record_id_for("rescreen", unique), kind=FeedbackKind.RESCREEN.value,
                decision_id=original["decision_id"], transaction=original["transaction"],
                previous_outcome=original["outcome"], lift=bool(lifted),
                lifted_entries=sorted(lifted) if lifted else None)
    return build_record(**base)


def case_opened_record(decision: dict[str, Any]) -> FeedbackRecord:
    """The ``case_opened`` record of a case's first watched decision (once per case)."""
    case_id = decision["transaction"]["case_id"]
    return build_record(**{**decision, "record_id": record_id_for(
        "case_opened", f"{decision['department']}\n{case_id}"),
        "kind": FeedbackKind.CASE_OPENED.value, "hmac": "", "receipt": None})


def commitment_record(kind: FeedbackKind, decision: dict[str, Any], *, commitment_id: str,
                      now: dt.datetime, items: list[str] | None = None,
                      due: dt.date | None = None, provisional: bool | None = None,
                      note: str | None = None, operator: str | None = None) -> FeedbackRecord:
    """A record of the commitment ledger about ``decision`` (its record, JSON form).

    A ``commitment_breached`` record is the one of its commitment (a derived id); the
    others are events of their own (a fresh id).
    """
    record_id = (record_id_for(kind.value, commitment_id)
                 if kind in (FeedbackKind.COMMITMENT_BREACHED, FeedbackKind.COMMITMENT)
                 else new_record_id())
    return build_record(**{
        **decision, "record_id": record_id, "kind": kind.value, "created_at": now,
        "commitment_id": commitment_id, "items": items, "due": due,
        "provisional": provisional, "note": note,
        "operator": operator if operator is not None else decision.get("operator"),
        "result": None, "previous_outcome": None, "hmac": "", "receipt": None})


def original_decision(record: dict[str, Any]) -> Decision:
    """A Decision rebuilt from a decision's record, for ``on_rescreen``: outcome, subject,
    case, measures (with the entries they used) and versions; the record keeps neither
    the full matched entries nor the reasons."""
    subject = record["subject"]
    return Decision(
        decision_id=record["decision_id"], outcome=Outcome(record["outcome"]),
        subject=Subject.model_validate({"kind": subject["kind"], "id": subject["id"],
                                        "name": subject.get("name")}),
        transaction=record["transaction"], measures=record.get("measures") or [],
        degraded=bool(record.get("degraded")), catalog_version=record.get("catalog_version"),
        data_version=record.get("data_version"), decided_at=record["created_at"])
