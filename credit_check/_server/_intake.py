"""Feedback intake: the records of a ``POST /v1/feedback`` body, each validated and its
HMAC verified on its own, made ready to store.

The SDK sends each record as its canonical JSON with ``,"hmac":"<hex>"`` as the last
member, so the HMAC is verified over the record's text as sent (cut out of the body with
``raw_decode``) and the record is stored as that text; only a record whose text does not
verify that way is encoded again canonically (another sender's spacing or escapes).
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from pydantic import ValidationError

from credit_check._crypto import canonical_json
from credit_check._models import CST, FeedbackRecord, describe_validation_error
from credit_check._server._feed import record_facts
from credit_check._server._http import DECODER, Problem, decode_json
from credit_check._server._store import ApiKey, Intake

FEEDBACK_LIMIT = 500
_HEAD = re.compile(r'\s*\{\s*"records"\s*:\s*\[')
_SPACE = re.compile(r"\s*")
_HMAC_TAIL = b',"hmac":"'


def split_records(raw: bytes) -> tuple[list[Any], list[str | None]]:
    """The records of a ``{"records": [...]}`` body and, when the body has just that plain
    shape, each record's exact text (else None for each).

    Raises:
        Problem: the body is not JSON (400), not of that shape (422), or has more than
            FEEDBACK_LIMIT records (413).
    """
    try:
        text = raw.decode("utf-8")
        records, texts = _split(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # Not the plain shape, or not JSON at all: read it whole for a precise answer.
        data = decode_json(raw)
        got = data.get("records") if isinstance(data, dict) else None
        if not isinstance(got, list):
            raise Problem(422, "the body must be {\"records\": [...]}") from None
        records, texts = got, [None] * len(got)
    if len(records) > FEEDBACK_LIMIT:
        raise Problem(413, f"at most {FEEDBACK_LIMIT} records per call, got {len(records)}")
    return records, texts


def _split(text: str) -> tuple[list[Any], list[str | None]]:
    head = _HEAD.match(text)
    if head is None:
        raise ValueError("not the plain shape")
    at = _SPACE.match(text, head.end()).end()  # type: ignore[union-attr]
    records: list[Any] = []
    texts: list[str | None] = []
    if text.startswith("]", at):
        at += 1
    else:
        while True:
            record, end = DECODER.raw_decode(text, at)
            records.append(record)
            texts.append(text[at:end])
            if len(records) > FEEDBACK_LIMIT:
                return records, texts  # refused by the caller; no point reading on
            at = _SPACE.match(text, end).end()  # type: ignore[union-attr]
            if text.startswith(",", at):
                at = _SPACE.match(text, at + 1).end()  # type: ignore[union-attr]
                continue
            if not text.startswith("]", at):
                raise ValueError("not the plain shape")
            at += 1
            break
    at = _SPACE.match(text, at).end()  # type: ignore[union-attr]
    if not text.startswith("}", at) or text[at + 1 :].strip():
        raise ValueError("not the plain shape")
    return records, texts


def check_record(key: ApiKey, record: Any, text: str | None) -> Intake | str:
    """The record ready to store, or why it is refused."""
    if type(record) is not dict:
        return "a record must be a JSON object"
    try:
        model = FeedbackRecord.model_validate(record)
    except ValidationError as exc:
        return describe_validation_error(exc, record, "feedback record")[:300]
    stored = signed_text(key.feedback_key, record, text)
    if stored is None:
        return "hmac does not verify with this department's key"
    try:
        day = model.created_at.astimezone(CST).date().isoformat()
    except OverflowError:  # at the end of the calendar
        day = model.created_at.date().isoformat()
    region, degraded, case_ref, lists, measures = record_facts(record)
    return Intake(model.record_id, model.department or key.department, model.kind.value,
                  model.transaction.scenario.value, model.outcome.value,
                  int(bool(model.matches)), len(model.measures), day, stored,
                  region, degraded, case_ref, lists, measures)


def signed_text(key: bytes, record: dict[str, Any], text: str | None) -> bytes | None:
    """The record's text to store (``hmac`` last) when its HMAC verifies, else None."""
    given = record.get("hmac")
    if not isinstance(given, str):
        return None
    if text is not None:
        sent = text.encode()
        cut = sent.rfind(_HMAC_TAIL)
        tail = sent[cut + len(_HMAC_TAIL) : -2]
        if (cut > 0 and sent.endswith(b'"}') and tail == given.encode("utf-8", "replace")
                and _verifies(key, sent[:cut] + b"}", given)):
            return sent
    body = canonical_json({k: v for k, v in record.items() if k != "hmac"})
    if not _verifies(key, body, given):
        return None
    # The signed body with the (verified, hex) hmac put back as its last member.
    return body[:-1] + b',"hmac":"' + given.encode() + b'"}'


def _verifies(key: bytes, body: bytes, given: str) -> bool:
    expected = hmac.digest(key, body, "sha256").hex()
    # Compared as bytes: compare_digest refuses str with non-ASCII characters.
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def take_feedback(key: ApiKey, raw: bytes) -> tuple[list[Intake], list[dict[str, Any]]]:
    """The good records of a body, and the refused ones with their index and reason."""
    records, texts = split_records(raw)
    good: list[Intake] = []
    rejected: list[dict[str, Any]] = []
    for i, (record, text) in enumerate(zip(records, texts, strict=True)):
        checked = check_record(key, record, text)
        if isinstance(checked, Intake):
            good.append(checked)
            continue
        rid = record.get("record_id") if isinstance(record, dict) else None
        rejected.append({"record_id": rid if isinstance(rid, str) else None, "index": i,
                         "reason": checked})
    return good, rejected
