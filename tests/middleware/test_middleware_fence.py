"""The fence: whatever fails inside the middleware (reading, extracting, checking) becomes a
logged, masked answer under ``on_error``, never an exception in the host application."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import anyio
import pytest
from _middleware_fakes import CLEAN, PERSON, FakeChecker, problem, sha

from credit_check._middleware._asgi import CreditCheckASGIMiddleware
from credit_check._middleware._body import RequestData
from credit_check._middleware._routes import FromJSON, Route
from credit_check._middleware._wsgi import CreditCheckWSGIMiddleware


class Buggy(FromJSON):
    """An extractor with a bug in it: it fails on the value it finds, naming it."""

    def extract(self, request: RequestData) -> list[str]:
        values = super().extract(request)
        raise KeyError(f"no rule for {values[0]}")


ROUTES = [Route("POST", "/bids", "bidding", subject=Buggy("uscc")),
          Route("POST", "/firms/{uscc}", "bidding", subject=FromJSON("uscc"))]


def test_a_bug_of_ours_is_a_masked_503_and_never_reaches_the_host(harness, caplog) -> None:
    h = harness(ROUTES)
    with caplog.at_level(logging.ERROR, logger="credit_check.middleware"):
        r = h.client.post("/bids", json={"uscc": PERSON})
    assert r.status_code == 503 and h.app.calls == 0
    assert problem(r.json())["cause"] == "check" and r.headers["x-credit-check"] == "error"
    assert h.middleware.errors == 1
    assert "KeyError" in caplog.text and "Traceback" in caplog.text  # a bug: its traceback
    assert PERSON not in caplog.text and PERSON[:6] + "********" + PERSON[-4:] in caplog.text


@pytest.mark.parametrize(("on_error", "status"), [("deny", 403), ("proceed", 200)])
def test_a_bug_of_ours_follows_on_error(harness, on_error: str, status: int) -> None:
    h = harness(ROUTES, on_error=on_error)
    body = json.dumps({"uscc": CLEAN, "pad": "x" * 5000}).encode()
    r = h.client.post("/bids", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and r.headers["x-credit-check"] == "error"
    if on_error == "proceed":  # the app still gets the body the middleware read, intact
        assert r.json()["sha"] == sha(body) and h.app.calls == 1


def test_a_failed_read_of_the_body_is_answered_not_raised() -> None:
    """A server whose input stream fails mid-body (WSGI) or whose receive raises (ASGI)."""

    class Broken(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise OSError("connection reset while reading the body")

    started: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise AssertionError("the app is not called")

    wsgi = CreditCheckWSGIMiddleware(app, checker=FakeChecker(), routes=ROUTES)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": f"/firms/{PERSON}",
               "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "50",
               "wsgi.input": Broken()}
    out = wsgi(environ, lambda status, headers, exc_info=None: started.append(status))
    assert started == ["503 Service Unavailable"] and json.loads(b"".join(out))["status"] == 503

    async def receive() -> dict[str, Any]:
        raise OSError("connection reset while reading the body")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asgi = CreditCheckASGIMiddleware(app, checker=FakeChecker(), routes=ROUTES)
    anyio.run(asgi, {"type": "http", "method": "POST", "path": f"/firms/{PERSON}",
                     "headers": [(b"content-type", b"application/json")]}, receive, send)
    assert sent[0]["status"] == 503 and asgi.errors == wsgi.errors == 1


def test_the_fence_leaves_the_apps_own_exceptions_to_the_host(harness) -> None:
    """Only what the middleware runs is fenced: an exception of the app propagates."""
    h = harness([Route("POST", "/firms/{uscc}", "bidding", subject=FromJSON("uscc"))])

    class AppError(Exception):
        pass

    def fail(*args: Any) -> Any:
        raise AppError("the app failed")

    h.middleware.app = fail
    with pytest.raises(AppError):
        h.client.post("/firms/x", json={"uscc": CLEAN})
    assert h.middleware.errors == 0
