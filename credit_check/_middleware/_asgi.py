"""The plain ASGI middleware: guard matching HTTP requests, pass everything else through."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credit_check._middleware._body import ASGIHeaders, RequestData
from credit_check._middleware._guard import STATE_KEY, CheckerLike, Guard, Verdict
from credit_check._middleware._respond import HEADER, Reply
from credit_check._middleware._routes import Route, RouteTable

_HEADER = HEADER.lower().encode("latin-1")


class CreditCheckASGIMiddleware:
    """Check the subject of every request that matches a route rule before the app sees it.

    Unmatched requests and non-HTTP scopes (lifespan, websocket) go straight to the app,
    body unread. A guarded request's body is read once (up to ``max_body``) and replayed
    to the app unchanged. The decision is put on ``scope["state"]["credit_decision"]``
    (``request.state.credit_decision`` in Starlette and FastAPI) and the response gets an
    ``X-Credit-Check`` header. The snapshot answer is taken in the event loop
    (``check_local_async`` when the checker has it: the decision records of the requests
    of one loop turn are committed together, and each request goes on once its record is
    on disk; else ``check_local``); a lookup or a consortium check runs in a worker thread.

    Args:
        app: the ASGI application.
        checker: the :class:`~credit_check.Checker`.
        routes: the route rules; the first match wins.
        max_body: the largest body read on a guarded route; larger → 413.
        review: ``"proceed"`` (the default) or ``"hold"`` (202, the app is not called).
        shadow: decide and report but never block.
        on_error: ``"review"`` (proceed, ``X-Credit-Check: error``) or ``"deny"`` (503).
        department: the department handling the cases, put on each transaction.

    Attributes:
        errors: how many checks failed with an unexpected exception.
    """

    def __init__(self, app: ASGIApp, *, checker: CheckerLike, routes: Sequence[Route],
                 max_body: int = 1_048_576, review: Literal["proceed", "hold"] = "proceed",
                 shadow: bool = False, on_error: Literal["review", "deny"] = "review",
                 department: str | None = None) -> None:
        self.app = app
        self.routes = RouteTable(routes)
        self.max_body = max_body
        self.guard = Guard(checker, review=review, shadow=shadow, on_error=on_error,
                           department=department)

    @property
    def errors(self) -> int:
        """How many checks failed with an unexpected exception."""
        return self.guard.errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = self.routes.match(scope["method"], scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        route, params = found
        headers = ASGIHeaders(scope["headers"])
        body: bytes | None = None
        if route.needs_body:
            read = await self._read(headers, receive)
            if isinstance(read, Verdict):
                await _send_reply(read.reply, send)
                return
            if read is None:
                return  # the client disconnected before sending the whole body
            body = read
            receive = _Replay(body, receive)
        query = scope.get("query_string", b"")
        request = RequestData(headers=headers, query_string=query.decode("latin-1") if query
                              else "", path_params=params, body=body)
        guard = self.guard
        plan = guard.plan(route, request)
        if isinstance(plan, Verdict):
            verdict = plan
        elif guard.local_async is not None:
            verdict = await guard.decide_async(plan)
        else:
            # The snapshot answer without another coroutine; a lookup goes to a thread.
            verdict = guard.decide_local(plan) or await guard.decide_in_thread(plan)
        if verdict.reply is not None:
            await _send_reply(verdict.reply, send)
            return
        if verdict.decision is not None:
            scope.setdefault("state", {})[STATE_KEY] = verdict.decision
        if verdict.header is None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _AddHeader(send, verdict.header.encode("latin-1")))

    async def _read(self, headers: ASGIHeaders, receive: Receive) -> bytes | Verdict | None:
        declared = headers.get("content-length", "")
        # isdigit() alone accepts "²" and other digits int() refuses: ASCII digits only.
        if declared.isascii() and declared.isdigit() and int(declared) > self.max_body:
            return self.guard.too_large(self.max_body)
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        if not message.get("more_body", False):  # the usual case: the body in one message
            return self.guard.too_large(self.max_body) if len(chunk) > self.max_body else chunk
        chunks = [chunk]
        size = len(chunk)
        while True:
            if size > self.max_body:
                return self.guard.too_large(self.max_body)
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if not message.get("more_body", False):
                if size > self.max_body:
                    return self.guard.too_large(self.max_body)
                return b"".join(chunks)


class _Replay:
    """A receive that gives the buffered body once, then defers to the server (disconnect)."""

    __slots__ = ("body", "receive")

    def __init__(self, body: bytes, receive: Receive) -> None:
        self.body: bytes | None = body
        self.receive = receive

    async def __call__(self) -> Message:
        body = self.body
        if body is not None:
            self.body = None
            return {"type": "http.request", "body": body, "more_body": False}
        return await self.receive()


class _AddHeader:
    """A send that adds the X-Credit-Check header to the response start."""

    __slots__ = ("send", "value")

    def __init__(self, send: Send, value: bytes) -> None:
        self.send = send
        self.value = value

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            message["headers"] = [*message.get("headers", ()), (_HEADER, self.value)]
        await self.send(message)


async def _send_reply(reply: Reply | None, send: Send) -> None:
    assert reply is not None
    await send({
        "type": "http.response.start",
        "status": reply.status,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                    for k, v in reply.headers],
    })
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})
