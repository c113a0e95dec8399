"""The Flask extension: route rules through the WSGI middleware, @guard on views."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from typing import Any

import flask
import pytest
from _middleware_fakes import (
    A_GRADE,
    ABNORMAL,
    BAD_USCC,
    BOOM,
    CLEAN,
    DEFAULTER,
    DEGRADED,
    FakeChecker,
    multipart,
    problem,
    sha,
)
from credit_check.adapters.flask import CreditCheck

from credit_check._middleware._routes import FromForm, FromHeader, FromJSON, FromPath, Route


def _describe() -> dict[str, Any]:
    decision = flask.g.get("credit_decision")
    return {"sha": hashlib.sha256(flask.request.get_data()).hexdigest(),
            "outcome": decision.outcome.value if decision is not None else None}


@pytest.fixture
def site() -> tuple[flask.Flask, CreditCheck, FakeChecker]:
    checker = FakeChecker()
    app = flask.Flask(__name__)
    ext = CreditCheck(checker=checker, routes=[
        Route("POST", "/bids", "bidding", subject=FromJSON("bidder.uscc")),
        Route("POST", "/consortium", "bidding", members=FromJSON("members")),
    ])

    @app.post("/bids")
    def bids() -> Any:
        return {**_describe(), "json": flask.request.get_json()}

    @app.post("/consortium")
    def consortium() -> Any:
        return _describe()

    @app.post("/licences/<uscc>")
    @ext.guard(scenario="licensing", subject=FromPath("uscc"))
    def licence(uscc: str) -> Any:
        return {**_describe(), "form": flask.request.form.to_dict()}

    @app.post("/subsidies")
    @ext.guard(scenario="licensing", subject=FromForm("uscc"), case_id=FromHeader("X-Case"))
    def subsidy() -> Any:
        return {**_describe(), "form": flask.request.form.to_dict()}

    @app.get("/open")
    def open_() -> Any:
        return _describe()

    ext.init_app(app)  # the app-factory style
    return app, ext, checker


def test_route_rule_allows_and_exposes_the_decision_on_g(site) -> None:
    app, _, _ = site
    body = json.dumps({"bidder": {"uscc": CLEAN}}).encode()
    r = app.test_client().post("/bids", data=body, content_type="application/json")
    assert r.status_code == 200 and r.json["sha"] == sha(body)
    assert r.json["outcome"] == "allow" and r.json["json"] == {"bidder": {"uscc": CLEAN}}
    assert r.headers["X-Credit-Check"].startswith("allow; decision=")


def test_route_rule_deny_and_invalid(site) -> None:
    app, _, _ = site
    client = app.test_client()
    r = client.post("/bids", json={"bidder": {"uscc": DEFAULTER}})
    assert r.status_code == 403 and r.content_type == "application/problem+json"
    assert problem(r.json)["entries"][0]["issuing_department"]
    r = client.post("/bids", json={"bidder": {"uscc": BAD_USCC}})
    assert r.status_code == 400 and r.json["field"] == "json:bidder.uscc"
    r = client.post("/bids", data="uscc=1", content_type="text/plain")
    assert r.status_code == 415


def test_consortium_group_outcome(site) -> None:
    app, _, checker = site
    r = app.test_client().post("/consortium", json={"members": [CLEAN, A_GRADE]})
    assert r.status_code == 200 and "decisions=" in r.headers["X-Credit-Check"]
    assert checker.calls[-1][0] == "check_many"


def test_guard_decorator_with_path_parameter_keeps_the_form(site) -> None:
    app, _, _ = site
    r = app.test_client().post(f"/licences/{ABNORMAL}", data={"a": "1"})
    assert r.status_code == 200 and r.json["outcome"] == "restrict"
    assert r.json["form"] == {"a": "1"}
    assert r.headers["X-Credit-Check"].startswith("restrict; decision=")
    r = app.test_client().post(f"/licences/{DEGRADED}")
    assert r.status_code == 200 and r.headers["X-Credit-Check"].endswith("; degraded")


def test_guard_decorator_reads_urlencoded_and_multipart_forms(site) -> None:
    app, _, checker = site
    client = app.test_client()
    form = urllib.parse.urlencode({"uscc": A_GRADE, "n": "二"})
    r = client.post("/subsidies", data=form, content_type="application/x-www-form-urlencoded",
                    headers={"X-Case": "CASE-1"})
    assert r.status_code == 200 and r.json["outcome"] == "green_channel"
    assert r.json["form"] == {"uscc": A_GRADE, "n": "二"} and r.json["sha"] == sha(form.encode())
    assert checker.calls[-1][2].case_id == "CASE-1"
    body, ctype = multipart({"uscc": DEFAULTER}, file=("a.pdf", b"%PDF" * 50))
    r = client.post("/subsidies", data=body, content_type=ctype)
    assert r.status_code == 200 and r.json["outcome"] == "review"
    r = client.post("/subsidies", data={})
    assert r.status_code == 400 and r.json["field"] == "form:uscc"


def test_unguarded_route_and_checker_failures(site) -> None:
    app, ext, checker = site
    before = len(checker.calls)
    assert app.test_client().get("/open").json["outcome"] is None
    assert len(checker.calls) == before
    r = app.test_client().post(f"/licences/{BOOM}")
    assert r.status_code == 200 and r.headers["X-Credit-Check"] == "error"
    assert ext.errors == 1


def test_missing_checker_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs a checker"):
        CreditCheck(flask.Flask(__name__))
