"""The Flask extension: route rules through the WSGI middleware, @guard on views."""

from __future__ import annotations

import hashlib
import io
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
    REMOTE,
    FakeChecker,
    multipart,
    problem,
    sha,
)
from _unrecorded import Sandboxed
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

    @app.post("/async-bids")
    @ext.guard(scenario="bidding", subject=FromJSON("uscc"))
    async def async_bid() -> Any:
        return {**_describe(), "json": flask.request.get_json()}

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
    assert r.status_code == 503 and r.headers["X-Credit-Check"] == "error"
    assert ext.errors == 1


def test_missing_checker_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="needs a checker"):
        CreditCheck(flask.Flask(__name__))


def test_guard_decorator_works_on_an_async_view(site) -> None:
    app, ext, checker = site
    client = app.test_client()
    r = client.post("/async-bids", json={"uscc": CLEAN})
    assert r.status_code == 200 and r.json["outcome"] == "allow"
    assert r.json["json"] == {"uscc": CLEAN} and r.headers["X-Credit-Check"].startswith("allow;")
    r = client.post("/async-bids", json={"uscc": DEFAULTER})
    assert r.status_code == 403 and problem(r.json)["outcome"] == "deny"
    r = client.post("/async-bids", json={"uscc": REMOTE})  # a lookup, in a worker thread
    assert r.status_code == 200 and checker.calls[-1][0] == "check"
    r = client.post("/async-bids", json={"uscc": BOOM})
    assert r.status_code == 503 and ext.errors == 1


def test_an_odd_content_length_is_answered_not_raised(site) -> None:
    app, _, _ = site
    for path in ("/bids", "/async-bids"):
        r = app.test_client().post(path, json={"uscc": CLEAN},
                                   environ_overrides={"CONTENT_LENGTH": "²"})
        assert r.status_code == 400 and r.json["field"] == "header:content-length", path


def test_a_body_without_length_over_the_limit_is_refused_unread() -> None:
    """A chunked body (the server ends the stream) past the guard's limit: 413, read no
    further than the limit."""
    app = flask.Flask(__name__)
    ext = CreditCheck(app, checker=FakeChecker(), max_body=100)

    @app.post("/bids")
    @ext.guard(scenario="bidding", subject=FromJSON("uscc"))
    def bid() -> Any:
        return {}

    class Counted(io.BytesIO):
        taken = 0

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            Counted.taken += len(data)
            return data

    body = json.dumps({"uscc": CLEAN, "pad": "x" * 4_000_000}).encode()
    r = app.test_client().post("/bids", input_stream=Counted(body),
                               content_type="application/json",
                               environ_overrides={"wsgi.input_terminated": True,
                                                  "CONTENT_LENGTH": ""})
    assert r.status_code == 413 and Counted.taken < 100_000  # not the 4 MB sent
    # The app's own smaller limit holds too (werkzeug would cut the body short unsaid).
    app.config["MAX_CONTENT_LENGTH"] = 60
    small = json.dumps({"uscc": CLEAN, "pad": "x" * 20}).encode()
    r = app.test_client().post("/bids", input_stream=io.BytesIO(small),
                               content_type="application/json",
                               environ_overrides={"wsgi.input_terminated": True,
                                                  "CONTENT_LENGTH": ""})
    assert len(small) < 100 and r.status_code == 413


def test_an_unrecorded_deny_is_refused_and_a_clean_firm_gets_503(sandbox: Sandboxed) -> None:
    app = flask.Flask(__name__)
    ext = CreditCheck(app, checker=sandbox.unrecorded,
                      routes=[Route("POST", "/bids", "bidding", subject=FromJSON("uscc"))])

    @app.post("/bids")
    def bids() -> Any:
        return _describe()

    @app.post("/view-bids")
    @ext.guard(scenario="bidding", subject=FromJSON("uscc"))
    def view_bids() -> Any:
        return _describe()

    @app.post("/async-view-bids")
    @ext.guard(scenario="bidding", subject=FromJSON("uscc"))
    async def async_view_bids() -> Any:
        return _describe()

    client = app.test_client()
    for path in ("/bids", "/view-bids", "/async-view-bids"):
        assert client.post(path, json={"uscc": sandbox.defaulter}).status_code == 403, path
        r = client.post(path, json={"uscc": sandbox.clean})
        assert r.status_code == 503 and r.json["cause"] == "record", path
