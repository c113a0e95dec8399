"""ASGI specifics: scopes passed through, bodies not read, the event loop never blocked."""

from __future__ import annotations

import json
import threading
from typing import Any

import anyio
from _middleware_fakes import BOOM, CLEAN, DEFAULTER, REMOTE, FakeChecker, TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute

from credit_check._middleware._asgi import CreditCheckASGIMiddleware
from credit_check._middleware._routes import FromJSON, FromQuery, Route

ROUTES = [Route("POST", "/bids", "bidding", subject=FromJSON("uscc")),
          Route("POST", "/consortium", "bidding", members=FromJSON("members")),
          Route("GET", "/q", "bidding", subject=FromQuery("uscc"))]


class Recorder:
    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.receives: list[Any] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        self.receives.append(receive)
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204,
                        "headers": [(b"x-app", b"1")]})
            await send({"type": "http.response.body", "body": b""})


async def _untouchable_receive() -> dict[str, Any]:
    raise AssertionError("the middleware must not read this body")


def _run(mw: CreditCheckASGIMiddleware, scope: dict[str, Any],
         messages: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    pending = list(messages or [])

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(mw, scope, receive if messages is not None else _untouchable_receive, send)
    return sent


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None,
           query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": query,
            "headers": headers or [], "asgi": {"version": "3.0"}}


def test_lifespan_and_websocket_scopes_pass_straight_through() -> None:
    app = Recorder()
    mw = CreditCheckASGIMiddleware(app, checker=FakeChecker(), routes=ROUTES)
    for scope in ({"type": "lifespan"}, {"type": "websocket", "path": "/bids"}):
        _run(mw, scope)
        assert app.scopes[-1] is scope and app.receives[-1] is _untouchable_receive


def test_unguarded_request_is_passed_untouched_and_its_body_unread() -> None:
    app = Recorder()
    checker = FakeChecker()
    mw = CreditCheckASGIMiddleware(app, checker=checker, routes=ROUTES)
    for scope in (_scope("GET", "/bids"), _scope("POST", "/bids/1"), _scope("PUT", "/q")):
        sent = _run(mw, scope)
        assert app.scopes[-1] is scope and app.receives[-1] is _untouchable_receive
        assert sent[0]["headers"] == [(b"x-app", b"1")] and "state" not in scope
    assert checker.calls == []


def test_query_rule_reads_no_body_and_appends_the_header() -> None:
    app = Recorder()
    mw = CreditCheckASGIMiddleware(app, checker=FakeChecker(), routes=ROUTES)
    scope = _scope("GET", "/q", query=f"uscc={CLEAN}".encode())
    sent = _run(mw, scope)
    assert app.receives[-1] is _untouchable_receive
    name, value = sent[0]["headers"][-1]
    assert name == b"x-credit-check" and value.startswith(b"allow; decision=")
    assert sent[0]["headers"][0] == (b"x-app", b"1")
    assert scope["state"]["credit_decision"].outcome.value == "allow"


def test_local_answers_stay_in_the_loop_and_lookups_go_to_a_thread() -> None:
    checker = FakeChecker()
    app = Recorder()
    mw = CreditCheckASGIMiddleware(app, checker=checker, routes=ROUTES)
    loop_thread = threading.current_thread().name
    for uscc in (CLEAN, REMOTE):
        body = json.dumps({"uscc": uscc}).encode()
        _run(mw, _scope("POST", "/bids", [(b"content-type", b"application/json")]),
             [{"type": "http.request", "body": body}])
    (m1, _, _, t1), (m2, _, _, t2) = checker.calls
    assert (m1, t1) == ("check_local", loop_thread)
    assert m2 == "check" and t2 != loop_thread
    body = json.dumps({"members": [CLEAN, DEFAULTER]}).encode()
    sent = _run(mw, _scope("POST", "/consortium", [(b"content-type", b"application/json")]),
                [{"type": "http.request", "body": body}])
    assert checker.calls[-1][0] == "check_many" and checker.calls[-1][3] != loop_thread
    assert sent[0]["status"] == 403


def test_chunked_body_is_reassembled_and_replayed_then_disconnect_follows() -> None:
    received: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        received.append(await receive())
        received.append(await receive())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    mw = CreditCheckASGIMiddleware(app, checker=FakeChecker(), routes=ROUTES)
    body = json.dumps({"uscc": CLEAN, "pad": "x" * 100}).encode()
    parts = [body[:10], body[10:50], body[50:]]
    _run(mw, _scope("POST", "/bids", [(b"content-type", b"application/json")]),
         [{"type": "http.request", "body": p, "more_body": i < 2} for i, p in enumerate(parts)])
    assert received[0] == {"type": "http.request", "body": body, "more_body": False}
    assert received[1] == {"type": "http.disconnect"}


def test_streamed_body_over_the_limit_stops_reading_and_answers_413() -> None:
    app = Recorder()
    mw = CreditCheckASGIMiddleware(app, checker=FakeChecker(), routes=ROUTES, max_body=100)
    chunks = [{"type": "http.request", "body": b"x" * 60, "more_body": True}] * 3
    sent = _run(mw, _scope("POST", "/bids", [(b"content-type", b"application/json")]), chunks)
    assert sent[0]["status"] == 413 and app.scopes == []


def test_client_disconnect_while_reading_calls_nothing() -> None:
    app = Recorder()
    checker = FakeChecker()
    mw = CreditCheckASGIMiddleware(app, checker=checker, routes=ROUTES)
    sent = _run(mw, _scope("POST", "/bids"), [{"type": "http.request", "body": b"{",
                                                "more_body": True}])
    assert sent == [] and app.scopes == [] and checker.calls == []


def test_starlette_request_state_carries_the_decision() -> None:
    async def endpoint(request: Request) -> JSONResponse:
        decision = request.state.credit_decision
        data = await request.json()
        return JSONResponse({"outcome": decision.outcome.value, "uscc": data["uscc"]})

    app = Starlette(routes=[StarletteRoute("/bids", endpoint, methods=["POST"])])
    app.add_middleware(CreditCheckASGIMiddleware, checker=FakeChecker(), routes=ROUTES)
    with TestClient(app) as client:  # runs the lifespan through the middleware too
        r = client.post("/bids", json={"uscc": CLEAN})
        assert r.json() == {"outcome": "allow", "uscc": CLEAN}
        assert r.headers["x-credit-check"].startswith("allow; decision=")
        assert client.post("/bids", json={"uscc": DEFAULTER}).status_code == 403


def _post(mw: CreditCheckASGIMiddleware, uscc: str) -> list[dict[str, Any]]:
    body = json.dumps({"uscc": uscc}).encode()
    return _run(mw, _scope("POST", "/bids", [(b"content-type", b"application/json")]),
                [{"type": "http.request", "body": body, "more_body": False}])


def test_the_snapshot_answer_is_taken_in_the_loop_and_a_lookup_in_a_thread() -> None:
    app = Recorder()
    checker = FakeChecker()
    mw = CreditCheckASGIMiddleware(app, checker=checker, routes=ROUTES)
    sent = _post(mw, CLEAN)
    assert sent[0]["status"] == 204 and dict(sent[0]["headers"])[b"x-credit-check"].startswith(
        b"allow; decision=")
    assert [c[0] for c in checker.calls] == ["check_local"]
    assert _post(mw, DEFAULTER)[0]["status"] == 403 and len(app.scopes) == 1
    _post(mw, REMOTE)  # no snapshot answer: the full check, in a worker thread
    assert checker.calls[-1][0] == "check" and checker.calls[-1][3] != threading.main_thread().name
    failed = _post(mw, BOOM)  # raised while awaited: the default on_error answers 503
    assert failed[0]["status"] == 503 and mw.errors == 1
    assert dict(failed[0]["headers"])[b"x-credit-check"] == b"error" and len(app.scopes) == 2
    lenient = CreditCheckASGIMiddleware(app, checker=checker, routes=ROUTES, on_error="proceed")
    assert _post(lenient, BOOM)[0]["status"] == 204 and len(app.scopes) == 3
    strict = CreditCheckASGIMiddleware(app, checker=checker, routes=ROUTES, on_error="deny")
    assert _post(strict, BOOM)[0]["status"] == 403 and len(app.scopes) == 3
