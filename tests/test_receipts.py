"""Receipts (credit_check._receipts): the claims a service signs, their verification and
binding, and receipts kept through JSON (the post-check queue, records, files)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from credit_check import Decision, InvalidReceipt, Outcome, ServiceReceipt, SnapshotReceipt
from credit_check._crypto import Signer, id_prefix, load_public_key, snapshot_message
from credit_check._models import CST, Subject, Transaction
from credit_check._receipts import (
    SnapshotHeader,
    binds,
    header_message,
    key_id,
    matches_answer,
    person_hash,
    receipt_claims,
    receipt_from_any,
    sign_receipt,
    verify_service_receipt,
    verify_snapshot_receipt,
)

PERSON = "11010519491231002X"
ORG = "91350100M000100Y43"
SIGNER = Signer.generate()
KEYS = {key_id(SIGNER.public_key): load_public_key(SIGNER.public_key)}


def answer(subject_id: str, kind: str, entries: int = 1) -> dict[str, object]:
    return {"subject": {"id": subject_id, "kind": kind, "legal_representative": None},
            "entries": [{"entry_id": f"e{i}", "list_code": "court", "list_kind": "black",
                         "status": "active", "subject_id": subject_id,
                         "effective_from": "2026-01-01T00:00:00+08:00"}
                        for i in range(entries)],
            "data_version": "7", "as_of": "2026-03-01T10:00:00+08:00", "withheld": []}


def signed(data: dict[str, object], department: str = "财政局") -> ServiceReceipt:
    return ServiceReceipt.from_wire(sign_receipt(SIGNER.sign, SIGNER.public_key,
                                                 receipt_claims(data, department)))


def test_a_person_is_named_only_by_a_salted_hash_that_the_id_binds() -> None:
    receipt = signed(answer(PERSON, "person"))
    assert PERSON not in receipt.signed and PERSON[:14] not in receipt.signed
    claims = verify_service_receipt(receipt, KEYS)
    assert claims["subject"] == {"kind": "person",
                                 "id_sha256": person_hash(claims["salt"], PERSON)}
    assert claims["entries"][0]["subject"] == "self"
    assert binds(claims, PERSON) and not binds(claims, "110105194912310021")
    # A fresh salt per receipt: two receipts of one person do not share a hash.
    other = signed(answer(PERSON, "person")).claims()
    assert other["subject"]["id_sha256"] != claims["subject"]["id_sha256"]


def test_an_organisation_is_named_in_clear_and_the_claims_match_the_answer() -> None:
    data = answer(ORG, "organization", entries=2)
    claims = verify_service_receipt(signed(data), KEYS)
    assert claims["subject"] == {"kind": "organization", "id": ORG}
    assert claims["department"] == "财政局" and claims["data_version"] == "7"
    assert matches_answer(claims, data, ORG) is None
    assert matches_answer(claims, {**data, "entries": []}, ORG) == \
        "its entries differ from the answer's"
    assert matches_answer(claims, {**data, "data_version": "8"}, ORG) is not None
    assert matches_answer(claims, data, "91350200MA2XN4YQ2L") == "it names another subject"


def test_a_changed_claim_or_another_key_does_not_verify() -> None:
    receipt = signed(answer(ORG, "organization"))
    forged = ServiceReceipt(alg="Ed25519", key_id=receipt.key_id,
                            signed=receipt.signed.replace('"active"', '"repaired"'),
                            signature=receipt.signature)
    with pytest.raises(InvalidReceipt, match="does not verify"):
        verify_service_receipt(forged, KEYS)
    other = Signer.generate()
    with pytest.raises(InvalidReceipt, match="not among the keys given"):
        verify_service_receipt(receipt, {key_id(other.public_key):
                                         load_public_key(other.public_key)})


def test_a_snapshot_receipt_verifies_its_header_and_names_the_prefix() -> None:
    issued = "2026-03-01T10:00:00.000000+08:00"
    header = SnapshotHeader(key_id(SIGNER.public_key), 42, "c" * 64,
                            SIGNER.sign(snapshot_message(42, "c" * 64)), issued, 3, 1,
                            SIGNER.sign(header_message(version=42, checksum="c" * 64,
                                                       issued_at=issued, catalog_serial=3,
                                                       epoch=1)))
    receipt = SnapshotReceipt(header, ORG)
    assert receipt.prefix == f"{id_prefix(ORG):08x}"
    assert verify_snapshot_receipt(receipt, KEYS) is True
    again = receipt_from_any(json.loads(json.dumps(receipt.to_dict())))
    assert isinstance(again, SnapshotReceipt) and again == receipt
    late = SnapshotHeader(header.key_id, 42, "c" * 64, header.signature,
                          "2026-03-09T10:00:00.000000+08:00", 3, 1, header.header_signature)
    with pytest.raises(InvalidReceipt, match="snapshot header 42"):
        verify_snapshot_receipt(SnapshotReceipt(late, ORG), KEYS)


def test_a_decision_keeps_its_receipt_through_json() -> None:
    receipt = signed(answer(ORG, "organization"))
    d = Decision(decision_id="d" * 32, outcome=Outcome.DENY, subject=Subject.organization(ORG),
                 transaction=Transaction(scenario="procurement"), receipt=receipt,
                 decided_at=dt.datetime(2026, 3, 1, tzinfo=CST))
    back = Decision.model_validate_json(d.model_dump_json())
    assert back == d and isinstance(back.receipt, ServiceReceipt)
    assert d.public_dict()["receipt"]["kind"] == "service"
    assert "ServiceReceipt(key_id=" in repr(d)


@pytest.mark.parametrize("bad", [{"kind": "nope"}, {"kind": "service", "alg": "Ed25519"},
                                 {"kind": "snapshot", "version": "x"}, ["not", "a", "dict"]])
def test_what_is_not_a_receipt_is_refused_with_a_clear_error(bad: object) -> None:
    with pytest.raises(InvalidReceipt):
        receipt_from_any(bad)
