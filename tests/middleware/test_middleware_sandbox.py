"""The middlewares with a real Checker against the real sandbox: a Starlette app, and the
gate that stays closed when a decision record cannot be written (DESIGN rule 13)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _middleware_fakes import CLEAN, TestClient, problem
from _unrecorded import Sandboxed, sandboxed
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute

from credit_check import Checker, CreditCheckASGIMiddleware, FromJSON, Route
from credit_check._server import SandboxServer


@pytest.fixture
def checker(tmp_path: Path) -> Iterator[Checker]:
    server = SandboxServer(db_path=tmp_path / "sandbox.sqlite3", demo=True, port=0)
    server.start()
    try:
        with Checker(base_url=server.base_url, api_key=server.demo_key,
                     department="市公共资源交易中心", data_dir=tmp_path / "sdk",
                     encryption_key=base64.b64encode(b"integration-key-32-bytes-long!!!")
                     .decode(), service_public_key=server.public_key, start=False) as c:
            assert c.sync()
            yield c
    finally:
        server.stop()


def test_real_checker_behind_the_middleware(checker: Checker) -> None:
    async def bid(request: Request) -> JSONResponse:
        return JSONResponse({"outcome": request.state.credit_decision.outcome.value})

    app = Starlette(routes=[StarletteRoute("/bids", bid, methods=["POST"])])
    app.add_middleware(CreditCheckASGIMiddleware, checker=checker, routes=[
        Route("POST", "/bids", "bidding", subject=FromJSON("uscc"))])
    with TestClient(app) as client:
        r = client.post("/bids", json={"uscc": CLEAN})
        assert r.status_code == 200 and r.json() == {"outcome": "allow"}
        assert r.headers["x-credit-check"].startswith("allow; decision=")


# --- DESIGN rule 13: the gate stays closed when the record cannot be written -----------

RECORD_ROUTES = [Route("POST", "/bids", "bidding", subject=FromJSON("uscc")),
                 Route("POST", "/consortium", "bidding", members=FromJSON("members"))]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandboxed]:
    with sandboxed(tmp_path_factory.mktemp("unrecorded")) as made:
        yield made


def _bid(h: Any, uscc: str) -> Any:
    return h.client.post("/bids", json={"uscc": uscc})


@pytest.mark.parametrize("on_error", ["unavailable", "deny", "proceed"])
def test_a_deny_whose_record_fails_is_refused_whatever_on_error_says(
        harness, sandbox: Sandboxed, on_error: str, caplog) -> None:
    h = harness(RECORD_ROUTES, checker=sandbox.unrecorded, on_error=on_error)
    with caplog.at_level(logging.ERROR, logger="credit_check.middleware"):
        r = _bid(h, sandbox.defaulter)
    assert r.status_code == 403 and h.app.calls == 0
    body = problem(r.json())
    assert body["outcome"] == "deny" and body["measures"] and body["remedy"]
    assert r.headers["x-credit-check"].startswith("deny; decision=")
    assert "OutboxError" in caplog.text and "holds (403), unrecorded" in caplog.text
    r = h.client.post("/consortium", json={"members": [sandbox.clean, sandbox.defaulter]})
    assert r.status_code == 403 and len(r.json()["decision_ids"]) == 2
    assert h.middleware.errors == 2


def test_a_clean_firm_whose_record_fails_gets_503_by_default(harness,
                                                             sandbox: Sandboxed) -> None:
    h = harness(RECORD_ROUTES, checker=sandbox.unrecorded)
    r = _bid(h, sandbox.clean)
    assert r.status_code == 503 and h.app.calls == 0
    body = problem(r.json())
    assert body["detail"] == ("信用核查无法记录，请稍后重试。 / The credit check could not be "
                              "recorded; retry later.")
    assert body["cause"] == "record" and r.headers["x-credit-check"] == "error"


def test_a_clean_firm_whose_record_fails_gets_403_with_on_error_deny(
        harness, sandbox: Sandboxed) -> None:
    h = harness(RECORD_ROUTES, checker=sandbox.unrecorded, on_error="deny")
    r = _bid(h, sandbox.clean)
    assert r.status_code == 403 and h.app.calls == 0
    body = problem(r.json())
    assert body["type"].endswith("check-failed") and body["cause"] == "record"


def test_on_error_proceed_calls_the_app_with_error_and_logs_an_error_each_time(
        harness, sandbox: Sandboxed, caplog) -> None:
    h = harness(RECORD_ROUTES, checker=sandbox.unrecorded, on_error="proceed")
    with caplog.at_level(logging.ERROR, logger="credit_check.middleware"):
        for _ in range(3):
            r = _bid(h, sandbox.clean)
            assert r.status_code == 200 and r.headers["x-credit-check"] == "error"
            assert r.json()["outcome"] == "allow"  # the decision made is attached
    logged = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.ERROR]
    assert len(logged) == 3 and all("on_error='proceed'" in m and "OutboxError" in m
                                    for m in logged)


def test_shadow_mode_never_blocks_an_unrecorded_deny_and_logs_it(
        harness, sandbox: Sandboxed, caplog) -> None:
    h = harness(RECORD_ROUTES, checker=sandbox.unrecorded, shadow=True)
    with caplog.at_level(logging.ERROR, logger="credit_check.middleware"):
        r = _bid(h, sandbox.defaulter)
    assert r.status_code == 200 and r.headers["x-credit-check"] == "error; shadow"
    assert r.json()["outcome"] == "deny" and "shadow mode" in caplog.text


def test_the_same_firms_pass_and_fail_as_usual_when_the_record_is_written(
        harness, sandbox: Sandboxed) -> None:
    """The control: with the record written, the real checker allows the clean firm and
    refuses the defaulter, so the answers above come from the failed record alone."""
    h = harness(RECORD_ROUTES, checker=sandbox.checker)
    assert _bid(h, sandbox.clean).status_code == 200
    assert _bid(h, sandbox.defaulter).status_code == 403
