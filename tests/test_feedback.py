"""Feedback record builders: decision, outcome and post-check records."""

from __future__ import annotations

import datetime as dt

import pytest
from _outbox_child import PERSON, PERSON_NAME, make_decision

from credit_check._crypto import id_prefix
from credit_check._exceptions import OutboxError
from credit_check._feedback import (
    decision_record,
    outcome_record,
    post_check_record,
    record_id_for,
)
from credit_check._models import (
    CST,
    AppliedMeasure,
    Decision,
    Effect,
    FeedbackKind,
    Outcome,
    Subject,
    Target,
)
from credit_check._receipts import Receipt, ServiceReceipt, SnapshotHeader, SnapshotReceipt

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=CST)


def test_decision_record_carries_everything_the_service_needs() -> None:
    d = make_decision(3)
    r = decision_record(d, department="财政局")
    assert r.kind is FeedbackKind.DECISION
    assert len(r.record_id) == 32 and int(r.record_id, 16) >= 0
    assert r.decision_id == d.decision_id and r.department == "财政局"
    assert r.transaction == d.transaction and r.operator == "clerk-7"
    assert (r.subject.id, r.subject.name) == (PERSON, PERSON_NAME)
    assert [m.entry_id for m in r.matches] == ["court:3"] and r.matches[0].subject_id == PERSON
    assert r.outcome is Outcome.DENY and r.created_at == d.decided_at
    assert (r.catalog_version, r.data_version, r.degraded) == ("2026.1", "17", False)
    assert r.hmac == ""  # signed by the outbox's sender


def _with_measure(d: Decision) -> Decision:
    measure = AppliedMeasure(
        code="bid.refuse", name="限制参加政府采购", effect=Effect.DENY,
        legal_basis="《政府采购法》第二十二条", implementing_department="财政部门",
        target=Target.SUBJECT, list_code="court.judgment_defaulter", entry_id="court:3",
        params={"commitment_days": 30, "note": "中文"})
    return d.model_copy(update={"measures": [measure], "degraded": True,
                                "subject": Subject.person(PERSON, PERSON_NAME)})


HEADER = SnapshotHeader("0123456789abcdef", 42, "c" * 64, "s" * 88,
                        "2026-03-02T10:00:00.000000+08:00", 3, 1, "h" * 88)
SIGNED = ServiceReceipt(alg="Ed25519", key_id="0123456789abcdef", signed='{"type":"x"}',
                        signature="s" * 88)


def _with_receipt(d: Decision, receipt: Receipt) -> Decision:
    return d.model_copy(update={"receipt": receipt})


@pytest.mark.parametrize("decision", [
    make_decision(3), make_decision(4, person=False), make_decision(5, matched=False,
                                                                    case_id=None),
    _with_measure(make_decision(6)),
    _with_receipt(make_decision(7, matched=False), SnapshotReceipt(HEADER, PERSON)),
    _with_receipt(make_decision(8), SIGNED),
], ids=["person-listed", "organization-listed", "not-listed-no-case", "with-measure",
        "snapshot-receipt", "service-receipt"])
def test_the_compact_form_makes_exactly_the_models_record(decision: Decision) -> None:
    from credit_check._outbox._codec import pack_decision, record_data

    model = decision_record(decision, department="财政局").model_dump(mode="json")
    del model["hmac"]
    assert record_data(pack_decision(decision, "财政局")) == model


def test_a_receipt_travels_in_the_record_only_when_the_service_takes_it_back() -> None:
    from credit_check._outbox._codec import pack_decision, record_data

    unsigned = SnapshotHeader("0123456789abcdef", 42, "c" * 64, "s" * 88)  # a v1 service
    plain = make_decision(9, matched=False)
    kept = _with_receipt(plain, SnapshotReceipt(HEADER, PERSON))
    left = _with_receipt(plain, SnapshotReceipt(unsigned, PERSON))
    assert decision_record(kept, department="x").receipt == kept.receipt.to_dict()  # type: ignore[union-attr]
    assert record_data(pack_decision(kept, "x"))["receipt"]["prefix"] == \
        f"{id_prefix(PERSON):08x}"
    # Without one, the record's form (and so its HMAC) is exactly what it always was.
    for d in (plain, left):
        assert "receipt" not in record_data(pack_decision(d, "x"))
        assert "receipt" not in decision_record(d, department="x").model_dump(mode="json")
        assert pack_decision(d, "x") == pack_decision(plain, "x")


def test_a_decision_has_one_decision_record_id_and_one_post_check_record_id() -> None:
    d = make_decision()
    first, again = decision_record(d, department="x"), decision_record(d, department="y")
    assert first.record_id == again.record_id == record_id_for("decision", d.decision_id)
    assert record_id_for("post_check", d.decision_id) != first.record_id
    assert record_id_for("decision", make_decision().decision_id) != first.record_id
    assert len(first.record_id) == 32 and int(first.record_id, 16) >= 0


def test_outcome_record_links_to_the_decision() -> None:
    original = decision_record(make_decision(), department="财政局")
    r = outcome_record(original, result="rejected", note="bid refused", operator=None, now=NOW)
    assert r.kind is FeedbackKind.OUTCOME and r.record_id != original.record_id
    assert (r.decision_id, r.transaction, r.subject) == (
        original.decision_id, original.transaction, original.subject)
    assert (r.result, r.note, r.created_at) == ("rejected", "bid refused", NOW)
    assert r.operator == "clerk-7"  # defaults to the deciding operator
    assert outcome_record(original, result="ok", note=None, operator="boss", now=NOW).operator == "boss"


def test_outcome_record_refuses_an_empty_or_oversized_result_with_a_package_error() -> None:
    original = decision_record(make_decision(), department="d")
    with pytest.raises(OutboxError, match="result"):
        outcome_record(original, result="", note=None, operator=None, now=NOW)
    with pytest.raises(OutboxError, match="note") as info:
        outcome_record(original, result="ok", note="x" * 5000, operator=None, now=NOW)
    assert PERSON not in str(info.value)


@pytest.mark.parametrize("previous", ["outcome", "decision"])
def test_post_check_record_is_linked_to_the_degraded_decision(previous: str) -> None:
    degraded = make_decision(matched=False).model_copy(update={"degraded": True})
    new = make_decision(1)
    prev = degraded.outcome if previous == "outcome" else degraded
    r = post_check_record(new, previous=prev, original_decision_id=degraded.decision_id,
                          department="财政局")
    assert r.kind is FeedbackKind.POST_CHECK
    assert r.decision_id == degraded.decision_id
    assert r.record_id == record_id_for("post_check", degraded.decision_id)
    assert r.previous_outcome is Outcome.ALLOW and r.outcome is Outcome.DENY
    assert [m.entry_id for m in r.matches] == ["court:1"]
