"""Echo apps (ASGI and WSGI) and a client fixture that runs a test through both middlewares."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import httpx
import pytest
from _middleware_fakes import FakeChecker, TestClient, sha

from credit_check._middleware._asgi import CreditCheckASGIMiddleware
from credit_check._middleware._routes import Route
from credit_check._middleware._wsgi import CreditCheckWSGIMiddleware


def _describe(decision: Any) -> dict[str, Any]:
    if decision is None:
        return {"outcome": None, "decision_ids": []}
    members = getattr(decision, "decisions", (decision,))
    return {"outcome": decision.outcome.value,
            "decision_ids": [d.decision_id for d in members]}


class EchoASGI:
    """Answers with the sha256 of the body it received and the decision it was given."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.calls += 1
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = dict(scope["headers"])
        data = {"sha": sha(body), "length": len(body),
                "content_length": headers.get(b"content-length", b"").decode() or None,
                **_describe(scope.get("state", {}).get("credit_decision"))}
        out = json.dumps(data).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": out})


class EchoWSGI:
    """The WSGI twin of :class:`EchoASGI`."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.calls += 1
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        data = {"sha": sha(body), "length": len(body),
                "content_length": environ.get("CONTENT_LENGTH") or None,
                **_describe(environ.get("credit_check.decision"))}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(data).encode()]


class Harness:
    """One middleware around an echo app, with an httpx client and the fake checker."""

    def __init__(self, kind: str, routes: Sequence[Route], **options: Any) -> None:
        self.kind = kind
        self.checker = options.pop("checker", None) or FakeChecker()
        self.client: httpx.Client
        self.middleware: CreditCheckASGIMiddleware | CreditCheckWSGIMiddleware
        self.app: EchoASGI | EchoWSGI
        if kind == "asgi":
            self.app = EchoASGI()
            self.middleware = CreditCheckASGIMiddleware(self.app, checker=self.checker,
                                                        routes=routes, **options)
            self.client = TestClient(self.middleware)
        else:
            self.app = EchoWSGI()
            self.middleware = CreditCheckWSGIMiddleware(self.app, checker=self.checker,
                                                        routes=routes, **options)
            self.client = httpx.Client(transport=httpx.WSGITransport(app=self.middleware),
                                       base_url="http://testserver")


@pytest.fixture(params=["asgi", "wsgi"])
def harness(request: pytest.FixtureRequest) -> Iterator[Callable[..., Harness]]:
    """Build a :class:`Harness` for each middleware kind in turn."""
    made: list[Harness] = []

    def make(routes: Sequence[Route], **options: Any) -> Harness:
        h = Harness(request.param, routes, **options)
        made.append(h)
        return h

    yield make
    for h in made:
        h.client.close()
