"""examples/subsidy: the Flask adapter against the real sandbox."""

from __future__ import annotations

from typing import Any

import flask
import pytest
from _examples_support import load_example

from credit_check import Checker

subsidy = load_example("subsidy")


@pytest.fixture
def app(checker: Checker) -> flask.Flask:
    return subsidy.create_app(checker)


def form(uscc: str, **extra: str) -> dict[str, str]:
    return {"uscc": uscc, "company": "示例科技有限公司", "project": "智能制造技术改造",
            "amount": "500000", "case_no": "BZ-2026-014", **extra}


def test_form_page(app: flask.Flask) -> None:
    resp = app.test_client().get("/")
    assert resp.status_code == 200 and b'action="/applications"' in resp.data


def test_wage_arrears_applicant_is_refused(app: flask.Flask, checker: Checker,
                                          ids: dict[str, str]) -> None:
    resp = app.test_client().post("/applications", data=form(ids["wage_arrears_org"]))
    assert resp.status_code == 403
    assert resp.content_type.startswith("application/problem+json")
    problem = resp.get_json(force=True)
    assert [m["code"] for m in problem["measures"]] == ["P-002"]
    assert problem["measures"][0]["legal_basis"]
    assert problem["entries"][0]["list_code"] == "labor.wage_arrears"
    assert problem["remedy"]
    assert app.extensions["subsidy_applications"].items == {}
    assert [r.outcome.value for r in checker.checks_for_case("BZ-2026-014")] == ["deny"]


def test_unknown_applicant_is_accepted_and_reported(app: flask.Flask, checker: Checker,
                                                   ids: dict[str, str], feedback: Any) -> None:
    resp = app.test_client().post("/applications", data=form(ids["unknown_org"]))
    assert resp.status_code == 201, resp.data
    assert resp.headers["X-Credit-Check"].startswith("allow; decision=")
    body = resp.get_json()
    assert body["status"] == "accepted" and body["credit"] == "allow"
    stored = app.extensions["subsidy_applications"].items[body["application_no"]]
    assert stored["project"] == "智能制造技术改造" and stored["amount"] == "500000"
    records = checker.checks_for_case("BZ-2026-014")
    assert [(r.kind.value, r.result) for r in records] == [("decision", None),
                                                           ("outcome", "accepted")]
    checker.close()
    received = {(r["kind"], r.get("result")) for r in feedback()
                if r["decision_id"] == body["decision_id"]}
    assert received == {("decision", None), ("outcome", "accepted")}


def test_json_api_is_guarded_by_the_route_rule(app: flask.Flask, ids: dict[str, str]) -> None:
    client = app.test_client()
    refused = client.post("/api/applications", json={
        "applicant": {"uscc": ids["court_defaulter_org"], "name": "丙公司"},
        "project": "x", "amount": "1000", "case_no": "BZ-2026-020"})
    assert refused.status_code == 403
    accepted = client.post("/api/applications", json={
        "applicant": {"uscc": ids["clean_3y_org"], "name": "丁公司"},
        "project": "x", "amount": "1000", "case_no": "BZ-2026-021"})
    assert accepted.status_code == 201, accepted.data
    assert accepted.get_json()["credit"] == "allow"


def test_invalid_code_and_amount(app: flask.Flask, ids: dict[str, str]) -> None:
    client = app.test_client()
    resp = client.post("/applications", data=form("91110000600037341N"))
    assert resp.status_code == 400
    assert resp.get_json(force=True)["field"] == "form:uscc"
    resp = client.post("/applications", data=form(ids["unknown_org"], amount="NaN"))
    assert resp.status_code == 400 and "amount" in resp.get_json()["detail"]
