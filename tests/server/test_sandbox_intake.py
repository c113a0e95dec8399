"""Feedback intake (credit_check/_server/_intake.py): a record sent as the SDK sends it
(canonical JSON, ``hmac`` last) is verified over its text as sent and stored as that text,
without encoding it again; any other spelling falls back to canonical re-encoding; a bad
record is refused on its own with its reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _sandbox_app_support import feedback_records

from credit_check._crypto import canonical_json, feedback_key
from credit_check._server import _intake
from credit_check._server._http import Problem
from credit_check._server._intake import FEEDBACK_LIMIT, take_feedback
from credit_check._server._store import ApiKey

API_KEY = "cc_test_intake"
KEY = ApiKey("k_1", "财政局", feedback_key(API_KEY), False)


def as_sent(records: list[dict[str, Any]]) -> bytes:
    """The body as the SDK's sender writes it: each record's canonical text, hmac last."""
    texts = [canonical_json({k: v for k, v in r.items() if k != "hmac"})[:-1]
             + b',"hmac":"' + r["hmac"].encode() + b'"}' for r in records]
    return b'{"records":[' + b",".join(texts) + b"]}"


def test_records_as_sent_are_verified_and_kept_as_their_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = feedback_records(API_KEY, 5)
    raw = as_sent(records)

    def no_reencoding(obj: Any) -> bytes:
        raise AssertionError("a record sent canonically was encoded again")

    monkeypatch.setattr(_intake, "canonical_json", no_reencoding)
    good, rejected = take_feedback(KEY, raw)
    assert rejected == []
    assert [g.record_id for g in good] == [r["record_id"] for r in records]
    assert b'{"records":[' + b",".join(g.text for g in good) + b"]}" == raw
    assert [json.loads(g.text) for g in good] == records
    assert (good[0].kind, good[0].scenario, good[0].hits, good[0].measures, good[0].day) == (
        "decision", "procurement", 1, 1, "2026-03-01")


@pytest.mark.parametrize("spelling", [
    {},  # json.dumps's own spacing
    {"ensure_ascii": True, "separators": (",", ":")},
    {"indent": 2},
])
def test_other_spellings_fall_back_to_canonical_encoding(spelling: dict[str, Any]) -> None:
    records = feedback_records(API_KEY, 3)
    # the first with its hmac first instead of last
    moved = [{"hmac": r["hmac"], **{k: v for k, v in r.items() if k != "hmac"}}
             for r in records[:1]] + records[1:]
    raw = json.dumps({"records": moved}, **spelling).encode()
    good, rejected = take_feedback(KEY, raw)
    assert rejected == [] and len(good) == 3
    assert [json.loads(g.text) for g in good] == records


def test_a_bad_record_is_refused_alone_on_the_fast_path() -> None:
    records = feedback_records(API_KEY, 4)
    records[1]["note"] = "changed after signing"
    raw = as_sent(records)
    bad = json.loads(raw)
    bad["records"][2] = {"record_id": "x", "kind": "nonsense"}
    body = b'{"records":[' + b",".join(
        [as_sent([records[0]])[12:-2], as_sent([records[1]])[12:-2],
         json.dumps(bad["records"][2]).encode(), b"17", as_sent([records[3]])[12:-2]]) + b"]}"
    good, rejected = take_feedback(KEY, body)
    assert [g.record_id for g in good] == [records[0]["record_id"], records[3]["record_id"]]
    reasons = {r["index"]: r["reason"] for r in rejected}
    assert sorted(reasons) == [1, 2, 3]
    assert "hmac" in reasons[1] and "kind" in reasons[2] and "object" in reasons[3]
    assert rejected[0]["record_id"] == records[1]["record_id"]


def test_a_forged_text_does_not_pass_for_a_signed_one() -> None:
    (record,) = feedback_records(API_KEY, 1)
    raw = as_sent([record])
    forged = raw.replace(b'"outcome":"deny"', b'"outcome":"allow"')
    assert forged != raw
    good, rejected = take_feedback(KEY, forged)
    assert good == [] and "hmac" in rejected[0]["reason"]
    other = ApiKey("k_2", "住建局", feedback_key("cc_other"), False)
    good, rejected = take_feedback(other, raw)
    assert good == [] and "hmac" in rejected[0]["reason"]


@pytest.mark.parametrize(("raw", "status"), [
    (b"", 400), (b"{", 400), (b'{"records": 5}', 422), (b"[]", 422),
    (b'{"records":[{"a":1},]}', 400), (b'{"records":[1] , "x": 2}', None),
    (b'  {  "records" :  [ ]  }  ', None), (b'{"records":[]}trailing', 400),
])
def test_body_shapes(raw: bytes, status: int | None) -> None:
    if status is None:
        good, rejected = take_feedback(KEY, raw)
        assert good == [] and len(rejected) == raw.count(b"1")
        return
    with pytest.raises(Problem) as excinfo:
        take_feedback(KEY, raw)
    assert excinfo.value.status_code == status


def test_more_than_the_limit_is_refused_whole() -> None:
    (record,) = feedback_records(API_KEY, 1)
    raw = as_sent([record] * (FEEDBACK_LIMIT + 1))
    with pytest.raises(Problem) as excinfo:
        take_feedback(KEY, raw)
    assert excinfo.value.status_code == 413 and str(FEEDBACK_LIMIT) in excinfo.value.detail
