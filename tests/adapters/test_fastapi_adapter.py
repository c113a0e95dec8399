"""The FastAPI dependency CreditDecision, and the ASGI middleware on a FastAPI app."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from _middleware_fakes import (
    ABNORMAL,
    BAD_USCC,
    BOOM,
    CLEAN,
    DEFAULTER,
    REMOTE,
    FakeChecker,
    TestClient,
    multipart,
    problem,
)
from _unrecorded import Sandboxed
from credit_check.adapters.fastapi import CreditCheckRefused, CreditDecision, problem_handler
from fastapi import Depends, FastAPI, Form, Request
from pydantic import BaseModel

from credit_check._middleware._asgi import CreditCheckASGIMiddleware
from credit_check._middleware._routes import FromForm, FromJSON, FromPath, Route
from credit_check._models import Decision


class Applicant(BaseModel):
    uscc: str


class Application(BaseModel):
    applicant: Applicant
    note: str = ""


@pytest.fixture
def checker() -> FakeChecker:
    return FakeChecker()


@pytest.fixture
def client(checker: FakeChecker) -> Any:
    app = FastAPI()
    app.add_exception_handler(CreditCheckRefused, problem_handler)
    licensing = CreditDecision(checker, scenario="licensing", subject=FromJSON("applicant.uscc"))
    by_path = CreditDecision(checker, scenario="bidding", subject=FromPath("uscc"),
                             on_error="deny")
    by_form = CreditDecision(checker, scenario="bidding", subject=FromForm("uscc"),
                             review="hold")

    @app.post("/licences")
    async def licence(payload: Application,
                      decision: Decision = Depends(licensing)) -> dict[str, Any]:
        return {"outcome": decision.outcome.value, "uscc": payload.applicant.uscc}

    @app.get("/firms/{uscc}")
    def firm(uscc: str, decision: Decision = Depends(by_path)) -> dict[str, Any]:
        return {"outcome": decision.outcome.value}

    @app.post("/forms")
    async def form(uscc: str = Form(), decision: Decision = Depends(by_form)) -> dict[str, Any]:
        return {"outcome": decision.outcome.value, "uscc": uscc}

    with TestClient(app) as c:
        yield c


def test_dependency_returns_the_decision_and_body_params_still_parse(client) -> None:
    r = client.post("/licences", json={"applicant": {"uscc": ABNORMAL}, "note": "n"})
    assert r.json() == {"outcome": "restrict", "uscc": ABNORMAL}
    assert r.headers["x-credit-check"].startswith("restrict; decision=")


def test_deny_raises_a_problem_response(client) -> None:
    r = client.get(f"/firms/{DEFAULTER}")
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert problem(r.json())["measures"][0]["code"] == "P-001"
    assert r.headers["x-credit-check"].startswith("deny; decision=")


def test_lookup_runs_in_a_thread(client, checker) -> None:
    r = client.get(f"/firms/{REMOTE}")
    assert r.status_code == 200 and checker.calls[-1][0] == "check"


def test_invalid_identifier_and_on_error_deny(client) -> None:
    r = client.post("/licences", json={"applicant": {"uscc": BAD_USCC}})
    assert r.status_code == 400 and r.json()["field"] == "json:applicant.uscc"
    r = client.get(f"/firms/{BOOM}")
    assert r.status_code == 403 and problem(r.json())["type"].endswith("check-failed")


def test_form_dependency_holds_review(client) -> None:
    body, ctype = multipart({"uscc": CLEAN})
    r = client.post("/forms", content=body, headers={"content-type": ctype})
    assert r.json() == {"outcome": "allow", "uscc": CLEAN}
    r = client.post("/forms", data={"uscc": ABNORMAL})
    assert r.status_code == 200
    r = client.post("/forms", data={"uscc": DEFAULTER})
    assert r.status_code == 403


def test_without_the_handler_the_problem_is_the_detail() -> None:
    app = FastAPI()
    dep = CreditDecision(FakeChecker(), scenario="bidding", subject=FromPath("uscc"))

    @app.get("/firms/{uscc}")
    def firm(decision: Decision = Depends(dep)) -> dict[str, Any]:
        return {}

    with TestClient(app) as c:
        r = c.get(f"/firms/{DEFAULTER}")
    assert r.status_code == 403 and r.json()["detail"]["outcome"] == "deny"


def test_asgi_middleware_works_with_fastapi_as_is(checker) -> None:
    app = FastAPI()
    app.add_middleware(CreditCheckASGIMiddleware, checker=checker, routes=[
        Route("POST", "/licences", "licensing", subject=FromJSON("applicant.uscc"))])

    @app.post("/licences")
    async def licence(payload: Application, request: Request) -> dict[str, Any]:
        return {"outcome": request.state.credit_decision.outcome.value}

    with TestClient(app) as c:
        assert c.post("/licences", json={"applicant": {"uscc": CLEAN}}).json() == {
            "outcome": "allow"}
        r = c.post("/licences", json={"applicant": {}})
        assert r.status_code == 400 and r.json()["field"] == "json:applicant.uscc"


def _call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]],
          body: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request through the app's ASGI interface, headers as a server hands them on."""
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "path": path, "raw_path": path.encode(), "root_path": "",
             "scheme": "http", "query_string": b"", "headers": headers,
             "server": ("testserver", 80), "client": ("127.0.0.1", 1)}
    anyio.run(app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return (start["status"], dict(start["headers"]),
            b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


def test_an_odd_content_length_is_answered_not_raised_into_fastapi(checker) -> None:
    """Content-Length: ² (latin-1 0xB2, a digit to str.isdigit but not to int): a 400 that
    names the header, where the dependency used to raise ValueError into the app."""
    app = FastAPI()
    app.add_exception_handler(CreditCheckRefused, problem_handler)
    dep = CreditDecision(checker, scenario="bidding", subject=FromJSON("uscc"))

    @app.post("/bids")
    async def bids(request: Request, decision: Decision = Depends(dep)) -> dict[str, Any]:
        return {"outcome": decision.outcome.value}

    body = json.dumps({"uscc": CLEAN}).encode()
    status, _, answer = _call(app, "POST", "/bids", [
        (b"content-type", b"application/json"), (b"content-length", "²".encode("latin-1"))],
        body)
    assert status == 400 and json.loads(answer)["field"] == "header:content-length"
    status, _, answer = _call(app, "POST", "/bids", [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        body)
    assert status == 200 and json.loads(answer) == {"outcome": "allow"}


def test_a_failure_of_ours_in_the_dependency_is_a_503_not_an_exception(checker) -> None:
    app = FastAPI()
    app.add_exception_handler(CreditCheckRefused, problem_handler)

    class Buggy(FromJSON):
        def extract(self, request: Any) -> list[str]:
            raise IndexError("a bug of ours")

    dep = CreditDecision(checker, scenario="bidding", subject=Buggy("uscc"))

    @app.post("/bids")
    async def bids(decision: Decision = Depends(dep)) -> dict[str, Any]:
        return {}

    with TestClient(app) as c:
        r = c.post("/bids", json={"uscc": CLEAN})
    assert r.status_code == 503 and dep.errors == 1


def test_an_unrecorded_deny_is_refused_and_a_clean_firm_gets_503(sandbox: Sandboxed) -> None:
    app = FastAPI()
    app.add_exception_handler(CreditCheckRefused, problem_handler)
    dep = CreditDecision(sandbox.unrecorded, scenario="bidding", subject=FromPath("uscc"))
    lenient = CreditDecision(sandbox.unrecorded, scenario="bidding", subject=FromPath("uscc"),
                             on_error="proceed")

    @app.get("/firms/{uscc}")
    async def firm(decision: Decision = Depends(dep)) -> dict[str, Any]:
        return {"outcome": decision.outcome.value}

    @app.get("/lenient/{uscc}")
    def lenient_firm(decision: Decision | None = Depends(lenient)) -> dict[str, Any]:
        return {"outcome": decision.outcome.value if decision else None}

    with TestClient(app) as c:
        r = c.get(f"/firms/{sandbox.defaulter}")
        assert r.status_code == 403 and r.json()["outcome"] == "deny"
        r = c.get(f"/firms/{sandbox.clean}")
        assert r.status_code == 503 and r.json()["cause"] == "record"
        assert c.get(f"/lenient/{sandbox.defaulter}").status_code == 403
        r = c.get(f"/lenient/{sandbox.clean}")
        assert r.status_code == 200 and r.headers["x-credit-check"] == "error"
        assert r.json() == {"outcome": "allow"}
