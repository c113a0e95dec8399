"""Every extractor, every body kind and every identifier problem, through both middlewares."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from _middleware_fakes import BAD_USCC, CLEAN, DEFAULTER, PERSON, multipart, problem, sha

from credit_check._middleware._routes import (
    FromForm,
    FromHeader,
    FromJSON,
    FromPath,
    FromQuery,
    Route,
)

ROUTES = [
    Route("POST", "/json", "bidding", subject=FromJSON("bidder.uscc")),
    Route("POST", "/form", "bidding", subject=FromForm("uscc"), case_id=FromForm("case")),
    Route("GET", "/query", "bidding", subject=FromQuery("uscc")),
    Route("GET", "/header", "bidding", subject=FromHeader("X-Applicant-Id")),
    Route("GET", "/firms/{uscc}/licences", "bidding", subject=FromPath("uscc")),
    Route("POST", "/many", "bidding", members=FromForm("member")),
]


def test_json_field_by_dotted_path(harness) -> None:
    h = harness(ROUTES)
    body = json.dumps({"bidder": {"uscc": DEFAULTER}}).encode()
    r = h.client.post("/json", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 403


def test_urlencoded_form_field_and_body_unchanged(harness) -> None:
    h = harness(ROUTES)
    body = urllib.parse.urlencode({"uscc": CLEAN, "case": "C-7", "note": "备注 & more"}).encode()
    r = h.client.post("/form", content=body,
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json()["sha"] == sha(body)
    assert h.checker.calls[-1][2].case_id == "C-7"


def test_multipart_field_skips_files_and_body_unchanged(harness) -> None:
    h = harness(ROUTES)
    body, ctype = multipart({"uscc": DEFAULTER, "case": "C-8"}, file=("a.bin", bytes(range(256))))
    r = h.client.post("/form", content=body, headers={"content-type": ctype})
    assert r.status_code == 403
    body, ctype = multipart({"uscc": CLEAN}, file=("a.bin", b"\x00" * 5000))
    r = h.client.post("/form", content=body, headers={"content-type": ctype})
    assert r.status_code == 200 and r.json()["sha"] == sha(body)


def test_email_parser_fallback_reads_multipart(monkeypatch) -> None:
    from credit_check._middleware import _body

    def missing() -> None:
        raise ImportError("python-multipart is not installed")

    monkeypatch.setattr(_body, "_multipart_parser", missing)
    body, ctype = multipart({"uscc": CLEAN, "name": "某公司"}, file=("x.txt", b"file"))
    request = _body.RequestData(headers={"content-type": ctype}, query_string="",
                                path_params={}, body=body)
    assert request.form() == {"uscc": [CLEAN], "name": ["某公司"]}


def test_query_header_and_path_parameters(harness) -> None:
    h = harness(ROUTES)
    assert h.client.get("/query", params={"uscc": DEFAULTER}).status_code == 403
    assert h.client.get("/query", params={"uscc": CLEAN}).status_code == 200
    assert h.client.get("/header", headers={"X-Applicant-Id": DEFAULTER}).status_code == 403
    assert h.client.get("/header", headers={"x-applicant-id": PERSON}).status_code == 200
    assert h.client.get(f"/firms/{DEFAULTER}/licences").status_code == 403
    assert h.client.get(f"/firms/{CLEAN}/licences").status_code == 200
    assert h.client.get(f"/firms/{CLEAN}/other").status_code == 200  # unguarded
    assert [c[1] for c in h.checker.calls] == [(DEFAULTER,), (CLEAN,), (DEFAULTER,), (PERSON,),
                                               (DEFAULTER,), (CLEAN,)]


def test_repeated_form_field_lists_consortium_members(harness) -> None:
    h = harness(ROUTES)
    body = urllib.parse.urlencode([("member", CLEAN), ("member", DEFAULTER)]).encode()
    r = h.client.post("/many", content=body,
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 403 and len(r.json()["decision_ids"]) == 2


def test_invalid_identifier_names_the_field_and_problem(harness) -> None:
    h = harness(ROUTES)
    body = json.dumps({"bidder": {"uscc": BAD_USCC}}).encode()
    r = h.client.post("/json", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and h.app.calls == 0
    assert r.headers["content-type"] == "application/problem+json"
    data = problem(r.json())
    assert data["field"] == "json:bidder.uscc" and data["problem"] == "check_character"
    assert "check character" in data["message"]
    bad_person = PERSON[:-1] + ("1" if PERSON[-1] != "1" else "2")
    r = h.client.get("/query", params={"uscc": bad_person})
    data = problem(r.json())
    assert data["field"] == "query:uscc" and data["problem"] == "check_character"
    assert bad_person not in r.text  # a person's id number is masked in the answer


def test_invalid_member_is_named_with_its_index(harness) -> None:
    h = harness(ROUTES)
    body = urllib.parse.urlencode([("member", CLEAN), ("member", BAD_USCC)]).encode()
    r = h.client.post("/many", content=body,
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["field"] == "form:member[1]"


@pytest.mark.parametrize("body", [{}, {"bidder": {}}, {"bidder": {"uscc": "  "}},
                                  {"bidder": {"uscc": None}}])
def test_missing_identifier_answers_400_naming_the_field(harness, body) -> None:
    h = harness(ROUTES)
    r = h.client.post("/json", content=json.dumps(body).encode(),
                      headers={"content-type": "application/json"})
    assert r.status_code == 400
    data = problem(r.json())
    assert data["field"] == "json:bidder.uscc" and data["problem"] == "missing"
    assert h.client.get("/header").json()["field"] == "header:X-Applicant-Id"


def test_wrong_shape_answers_400(harness) -> None:
    h = harness(ROUTES)
    r = h.client.post("/json", content=b'{"bidder": {"uscc": {"a": 1}}}',
                      headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["type"].endswith("invalid-field")


def test_malformed_json_400_and_wrong_content_type_415(harness) -> None:
    h = harness(ROUTES)
    r = h.client.post("/json", content=b'{"bidder": ', headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert problem(r.json())["expected"] == ["application/json"]
    r = h.client.post("/json", content=b"uscc=1", headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"]
    r = h.client.post("/form", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 415
    assert r.json()["expected"] == ["application/x-www-form-urlencoded", "multipart/form-data"]
    assert h.app.calls == 0


def test_too_long_case_id_answers_400_naming_it(harness) -> None:
    h = harness(ROUTES)
    body = urllib.parse.urlencode({"uscc": CLEAN, "case": "x" * 500}).encode()
    r = h.client.post("/form", content=body,
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["field"] == "form:case"


def test_body_near_the_limit_is_replayed_byte_for_byte(harness) -> None:
    h = harness(ROUTES, max_body=200_000)
    padding = "数" * ((200_000 - 200) // 3)
    body = json.dumps({"bidder": {"uscc": CLEAN}, "pad": padding}, ensure_ascii=False).encode()
    assert 199_000 < len(body) <= 200_000
    r = h.client.post("/json", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["sha"] == sha(body)
    assert r.json()["length"] == len(body)


def test_body_over_the_limit_answers_413_without_checking(harness) -> None:
    h = harness(ROUTES, max_body=1000)
    body = json.dumps({"bidder": {"uscc": CLEAN}, "pad": "x" * 1000}).encode()
    r = h.client.post("/json", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413 and h.app.calls == 0 and h.checker.calls == []
    data = problem(r.json())
    assert data["limit"] == 1000
    # the limit does not apply to routes that read no body
    big = h.client.post("/other", content=body)
    assert big.status_code == 200 and big.json()["sha"] == sha(body)
