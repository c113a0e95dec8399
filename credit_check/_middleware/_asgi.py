"""The plain ASGI middleware: guard matching HTTP requests, pass everything else through."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from credit_check._middleware._body import ASGIHeaders, RequestData
from credit_check._middleware._guard import STATE_KEY, CheckerLike, Guard, OnError, Verdict
from credit_check._middleware._reader import MAX_BODY, ClientGone, receive_body
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
        on_error: when the check cannot be completed or recorded: ``"unavailable"`` (the
            default: 503), ``"deny"`` (403) or ``"proceed"`` (the app is called with
            ``X-Credit-Check: error``, logged at ERROR each time). A DENY that was decided
            is refused (403) whatever this says. ``"review"`` is a deprecated alias of
            ``"proceed"``.
        department: the department handling the cases, put on each transaction.

    Attributes:
        errors: how many checks failed with an unexpected exception.
    """

    def __init__(self, app: ASGIApp, *, checker: CheckerLike, routes: Sequence[Route],
                 max_body: int = MAX_BODY, review: Literal["proceed", "hold"] = "proceed",
                 shadow: bool = False, on_error: OnError = "unavailable",
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
        replay: _Replay | None = None
        verdict: Verdict | None = None
        try:  # everything we run in the host's request: a failure of ours is answered here
            found = self.routes.match(scope["method"], scope["path"])
            if found is not None:
                route, params = found
                headers = ASGIHeaders(scope["headers"])
                body: bytes | None = None
                if route.needs_body:
                    replay = _Replay(receive)
                    body = await receive_body(replay.read, headers.get("content-length"),
                                              self.max_body)
                    replay.read_messages = [
                        {"type": "http.request", "body": body, "more_body": False}]
                verdict = await self._evaluate(scope, headers, route, params, body)
        except ClientGone:
            return  # nobody to answer, nothing to check
        except Exception as exc:
            verdict = self.guard.failed(None, exc, where=_where(scope))
        if replay is not None:
            receive = replay  # the app reads the body the middleware read, then the rest
        if verdict is None:
            await self.app(scope, receive, send)
            return
        if verdict.reply is not None:
            await _send_reply(verdict.reply, send)
            return
        if verdict.decision is not None:
            scope.setdefault("state", {})[STATE_KEY] = verdict.decision
        if verdict.header is None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _AddHeader(send, verdict.header.encode("latin-1")))

    async def _evaluate(self, scope: Scope, headers: ASGIHeaders, route: Route,
                        params: dict[str, str], body: bytes | None) -> Verdict:
        query = scope.get("query_string", b"")
        request = RequestData(headers=headers, query_string=query.decode("latin-1") if query
                              else "", path_params=params, body=body)
        guard = self.guard
        plan = guard.plan(route, request)
        if isinstance(plan, Verdict):
            return plan
        # The snapshot answer without another coroutine; a lookup goes to a thread.
        return guard.decide_local(plan) or await guard.decide_in_thread(plan)


def _where(scope: Scope) -> str:
    return f"{scope.get('method')} {scope.get('path')}"


class _Replay:
    """A receive that gives the app what the middleware read (the whole body in one
    message; or, if a failure stopped the reading, the messages read so far), then defers
    to the server (the rest of the body, then ``http.disconnect``)."""

    __slots__ = ("read_messages", "receive")

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.read_messages: list[Message] = []

    async def read(self) -> Message:
        """Receive a message for the middleware, kept for the app."""
        message = await self.receive()
        self.read_messages.append(message)
        return message

    async def __call__(self) -> Message:
        if self.read_messages:
            return self.read_messages.pop(0)
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
