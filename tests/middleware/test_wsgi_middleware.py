"""WSGI specifics: wsgi.input replaced, CONTENT_LENGTH kept, unguarded requests untouched."""

from __future__ import annotations

import io
import json
from typing import Any

from _middleware_fakes import CLEAN, DEFAULTER, FakeChecker

from credit_check._middleware._routes import FromJSON, Route
from credit_check._middleware._wsgi import CreditCheckWSGIMiddleware

ROUTES = [Route("POST", "/bids", "bidding", subject=FromJSON("uscc"))]


class Untouchable(io.RawIOBase):
    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the middleware must not read this body")


def _app(seen: list[dict[str, Any]]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(dict(environ))
        start_response("200 OK", [("X-App", "1")])
        return [b"ok"]
    return app


def _environ(path: str, body: bytes | None = None, **extra: Any) -> dict[str, Any]:
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "",
           "CONTENT_TYPE": "application/json",
           "wsgi.input": io.BytesIO(body) if body is not None else Untouchable()}
    if body is not None:
        env["CONTENT_LENGTH"] = str(len(body))
    env.update(extra)
    return env


def _call(mw: CreditCheckWSGIMiddleware, env: dict[str, Any]) -> tuple[str, list[Any], bytes]:
    got: list[Any] = []

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
        got.extend([status, headers])
        return lambda data: None

    body = b"".join(mw(env, start_response))
    return got[0], got[1], body


def test_unguarded_request_is_passed_untouched_and_its_body_unread() -> None:
    seen: list[dict[str, Any]] = []
    checker = FakeChecker()
    mw = CreditCheckWSGIMiddleware(_app(seen), checker=checker, routes=ROUTES)
    env = _environ("/other")
    status, headers, _ = _call(mw, env)
    assert status == "200 OK" and headers == [("X-App", "1")]
    assert seen[0]["wsgi.input"] is env["wsgi.input"] and checker.calls == []


def test_guarded_body_is_replaced_by_bytesio_and_content_length_kept() -> None:
    seen: list[dict[str, Any]] = []
    mw = CreditCheckWSGIMiddleware(_app(seen), checker=FakeChecker(), routes=ROUTES)
    body = json.dumps({"uscc": CLEAN}).encode()
    status, headers, _ = _call(mw, _environ("/bids", body))
    assert status == "200 OK" and headers[-1][0] == "X-Credit-Check"
    env = seen[0]
    assert env["CONTENT_LENGTH"] == str(len(body)) and env["wsgi.input"].read() == body
    assert env["credit_check.decision"].outcome.value == "allow"


def test_chunked_body_without_length_is_read_to_its_end() -> None:
    seen: list[dict[str, Any]] = []
    mw = CreditCheckWSGIMiddleware(_app(seen), checker=FakeChecker(), routes=ROUTES)
    body = json.dumps({"uscc": DEFAULTER}).encode()
    env = _environ("/bids", body, HTTP_TRANSFER_ENCODING="chunked")
    del env["CONTENT_LENGTH"]
    status, _, reply = _call(mw, env)
    assert status == "403 Forbidden" and json.loads(reply)["outcome"] == "deny"
    env = _environ("/bids", b"x" * 5000, **{"wsgi.input_terminated": True})
    del env["CONTENT_LENGTH"]
    mw = CreditCheckWSGIMiddleware(_app(seen), checker=FakeChecker(), routes=ROUTES,
                                   max_body=4096)
    assert _call(mw, env)[0] == "413 Content Too Large"


def test_declared_length_over_the_limit_answers_413_without_reading() -> None:
    mw = CreditCheckWSGIMiddleware(_app([]), checker=FakeChecker(), routes=ROUTES, max_body=10)
    env = _environ("/bids", CONTENT_LENGTH="11")
    status, headers, reply = _call(mw, env)
    assert status == "413 Content Too Large"
    assert ("Content-Type", "application/problem+json") in headers
    assert json.loads(reply)["status"] == 413
