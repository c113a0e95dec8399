"""How a feedback record travels: a compact form written on the request path, and the
record it becomes (DESIGN §8) when the sender reads it.

``check()`` cannot afford the canonical JSON and HMAC of a record (~20 µs); it writes the
decision's fields as one ``marshal`` tuple instead (~1 µs), encrypted with the rest of the
frame. The record's content is fixed when it is written, so the sender (off the request
path) builds the very same JSON form, its record id and its HMAC from it later.

Forms (the first item is the tag; a new tag is added, never an old one changed):

- ``("D1", decision_id, department, transaction, subject_kind, subject_id, subject_name,
  matches, measures, outcome, degraded, catalog_version, data_version, created_at)``: a
  ``decision`` record. ``transaction`` is a dict of the Transaction's fields; ``matches``
  tuples of ``(entry_id, list_code, list_kind, status, subject_id)``; ``measures`` the
  applied measures' JSON forms.
- ``("D2", …the D1 items…, receipt)``: a ``decision`` record with its receipt (§9.4):
  ``("snapshot", (key_id, version, checksum, signature, issued_at, catalog_serial, epoch,
  header_signature))`` — the prefix is made from the subject id when read — or
  ``("service", receipt JSON)``. Written only for a receipt that ``recordable`` says the
  service takes back.
- ``("R1", record)``: any record, as its JSON form without ``hmac``.

A decision record's id is derived from its decision id (``_feedback.record_id_for``).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import marshal
from typing import Any

from pydantic_core import to_jsonable_python

from credit_check._crypto import canonical_json
from credit_check._feedback import record_id_for
from credit_check._models import Decision, FeedbackRecord, FeedbackSubject, max_length
from credit_check._receipts import Receipt, SnapshotHeader, SnapshotReceipt

_NAME_MAX = max_length(FeedbackSubject, "name")


def _plain(value: Any) -> Any:
    # Enums (open code strings included) as their plain values: marshal takes plain types.
    return value.value if isinstance(value, enum.Enum) else value


def pack_decision(decision: Decision, department: str) -> bytes:
    """The compact form of a decision's record, for the request path.

    Raises:
        ValueError: the decision cannot make a valid record (a subject name over the
            record's limit); the message names the field.
    """
    subject = decision.subject
    name = subject.name
    if name is not None and len(name) > _NAME_MAX:
        raise ValueError(f"subject.name: at most {_NAME_MAX} characters in a feedback record")
    transaction = dict(decision.transaction.__dict__)
    # str() of a StrEnum is its value (and of a plain string, itself), without the
    # Enum.value descriptor's cost; any other non-plain field takes the slow way below.
    transaction["scenario"] = str(transaction["scenario"])
    measures, matches = decision.measures, decision.matches
    item: tuple[Any, ...] = (
        "D1", decision.decision_id, department, transaction, str(subject.kind), subject.id,
        name,
        tuple((e.entry_id, e.list_code, str(e.list_kind), str(e.status), e.subject_id)
              for e in matches) if matches else (),
        tuple(m.model_dump(mode="json") for m in measures) if measures else (),
        str(decision.outcome), decision.degraded, decision.catalog_version,
        decision.data_version, to_jsonable_python(decision.decided_at),
    )
    receipt = decision.receipt
    if receipt is not None and receipt.recordable:
        item = ("D2", *item[1:], _receipt_form(receipt))
    try:
        return marshal.dumps(item)
    except ValueError:  # a field of a type marshal does not take (an enum added later)
        item = (*item[:3], {k: _plain(v) for k, v in transaction.items()}, *item[4:])
        return marshal.dumps(item)


def _receipt_form(receipt: Receipt) -> tuple[Any, ...]:
    if isinstance(receipt, SnapshotReceipt):
        return ("snapshot", receipt.header.form)
    return ("service", receipt.to_dict())


def _receipt_data(form: Any, subject_id: str) -> dict[str, Any]:
    kind, value = form
    if kind == "snapshot":
        return SnapshotReceipt(SnapshotHeader(*value), subject_id).to_dict()
    return dict(value)


def pack_record(data: dict[str, Any]) -> bytes:
    """The compact form of any record given as its JSON form (``hmac`` left out)."""
    body = {k: v for k, v in data.items() if k != "hmac"}
    return marshal.dumps(("R1", body))


def record_data(packed: bytes) -> dict[str, Any]:
    """The record's JSON form (without ``hmac``) from its compact form.

    Raises:
        ValueError: not a form this version knows.
    """
    try:
        # Only ever our own frames: the GCM tag was checked before this is reached.
        item = marshal.loads(packed)  # noqa: S302
    except (EOFError, ValueError, TypeError) as exc:
        raise ValueError(f"not a record: {exc}") from None
    if not isinstance(item, tuple) or not item:
        raise ValueError("not a record")
    tag = item[0]
    if tag == "R1" and len(item) == 2 and isinstance(item[1], dict):
        return dict(item[1])
    if (tag == "D1" and len(item) == 14) or (tag == "D2" and len(item) == 15):
        (_, decision_id, department, transaction, kind, subject_id, name, matches, measures,
         outcome, degraded, catalog_version, data_version, created_at) = item[:14]
        data = {
            "record_id": record_id_for("decision", decision_id),
            "kind": "decision",
            "decision_id": decision_id,
            "department": department,
            "transaction": dict(transaction),
            "subject": {"kind": kind, "id": subject_id, "name": name},
            "matches": [{"entry_id": e[0], "list_code": e[1], "list_kind": e[2],
                         "status": e[3], "subject_id": e[4]} for e in matches],
            "measures": [dict(m) for m in measures],
            "outcome": outcome,
            "degraded": degraded,
            "catalog_version": catalog_version,
            "data_version": data_version,
            "created_at": created_at,
            "result": None,
            "note": None,
            "operator": transaction.get("operator"),
            "previous_outcome": None,
        }
        if tag == "D2":
            data["receipt"] = _receipt_data(item[14], subject_id)
        return data
    raise ValueError(f"unknown record form {tag!r}")


def signed_text(data: dict[str, Any], hmac_key: bytes) -> tuple[bytes, str]:
    """The record's canonical JSON (without ``hmac``) and its HMAC (hex)."""
    body = canonical_json(data)
    return body, hmac.new(hmac_key, body, hashlib.sha256).hexdigest()


def with_hmac(body: bytes, mac: str) -> bytes:
    """The JSON text sent for a record: its canonical body with ``"hmac"`` put back as the
    last member, without decoding and encoding it again."""
    if mac.isascii() and mac.isalnum() and len(body) > 2 and body.startswith(b"{") \
            and body.endswith(b"}"):
        return b'%s,"hmac":"%s"}' % (body[:-1], mac.encode())
    data = json.loads(body)
    data["hmac"] = mac
    return canonical_json(data)


def model(data: dict[str, Any], mac: str) -> FeedbackRecord:
    """The record as a model, its HMAC put back."""
    return FeedbackRecord.model_validate({**data, "hmac": mac})

