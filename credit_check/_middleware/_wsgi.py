"""The plain WSGI middleware: guard matching requests, pass everything else through."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from credit_check._middleware._body import RequestData, wsgi_headers
from credit_check._middleware._guard import ENVIRON_KEY, CheckerLike, Guard, Verdict
from credit_check._middleware._respond import HEADER, Reply
from credit_check._middleware._routes import Route, RouteTable

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
else:
    StartResponse = WSGIApplication = WSGIEnvironment = Any


class CreditCheckWSGIMiddleware:
    """Check the subject of every request that matches a route rule before the app sees it.

    Unmatched requests go straight to the app, body unread. A guarded request's body is
    read once (up to ``max_body``) and handed on as a fresh ``wsgi.input`` (``BytesIO``);
    ``CONTENT_LENGTH`` is kept. The decision is put on ``environ["credit_check.decision"]``
    and the response gets an ``X-Credit-Check`` header.

    Args:
        app: the WSGI application.
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

    def __init__(self, app: WSGIApplication, *, checker: CheckerLike, routes: Sequence[Route],
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

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        found = self.routes.match(environ.get("REQUEST_METHOD", "GET"),
                                  _path(environ.get("PATH_INFO", "")))
        if found is None:
            return self.app(environ, start_response)
        verdict = self.evaluate(environ, *found)
        if verdict.reply is not None:
            return _send_reply(verdict.reply, start_response)
        if verdict.decision is not None:
            environ[ENVIRON_KEY] = verdict.decision
        if verdict.header is None:
            return self.app(environ, start_response)
        extra = (HEADER, verdict.header)

        def start_with_header(status: str, headers: list[tuple[str, str]],
                              exc_info: Any = None) -> Callable[[bytes], object]:
            return start_response(status, [*headers, extra], exc_info)

        return self.app(environ, start_with_header)

    def evaluate(self, environ: WSGIEnvironment, route: Route,
                 params: dict[str, str]) -> Verdict:
        """Read the body if the rule needs it, then extract and check (the Django adapter
        calls this with Django's WSGI environ)."""
        body: bytes | None = None
        if route.needs_body:
            read = read_body(environ, self.max_body)
            if read is None:
                return self.guard.too_large(self.max_body)
            body = read
        request = RequestData(headers=wsgi_headers(environ),
                              query_string=environ.get("QUERY_STRING", ""),
                              path_params=params, body=body)
        return self.guard.evaluate(route, request)


def _path(path_info: str) -> str:
    """PATH_INFO as text: PEP 3333 hands the path's bytes on as latin-1, so a full-width
    identifier in the path would reach the extractor as mojibake (ASGI gives it decoded)."""
    try:
        return path_info.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return path_info  # not UTF-8 (or not from a PEP 3333 server): match it as it is


def read_body(environ: WSGIEnvironment, limit: int) -> bytes | None:
    """Read ``wsgi.input`` once and put a ``BytesIO`` of it in its place; None when the
    body is over ``limit`` (nothing more is read then)."""
    declared = (environ.get("CONTENT_LENGTH") or "").strip()
    stream = environ["wsgi.input"]
    # isdigit() alone accepts "²" and other digits int() refuses: ASCII digits only.
    if declared.isascii() and declared.isdigit():
        length = int(declared)
        if length > limit:
            return None
        body = _read_exactly(stream, length)
    elif environ.get("wsgi.input_terminated") or "chunked" in environ.get(
            "HTTP_TRANSFER_ENCODING", "").lower():
        # No length but the server ends the stream for us: read one byte past the limit
        # so an over-limit body is told apart from one exactly at it.
        body = _read_exactly(stream, limit + 1)
        if len(body) > limit:
            return None
        environ["CONTENT_LENGTH"] = str(len(body))
    else:
        body = b""  # PEP 3333: without CONTENT_LENGTH there is no body to read
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _read_exactly(stream: Any, length: int) -> bytes:
    chunks = []
    while length > 0:
        chunk = stream.read(min(length, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        length -= len(chunk)
    return b"".join(chunks)


def _send_reply(reply: Reply, start_response: StartResponse) -> Iterable[bytes]:
    start_response(f"{reply.status} {reply.reason}", list(reply.headers))
    return [reply.body]
