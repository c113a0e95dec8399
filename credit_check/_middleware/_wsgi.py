"""The plain WSGI middleware: guard matching requests, pass everything else through."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from credit_check._middleware._body import RequestData, wsgi_headers
from credit_check._middleware._guard import ENVIRON_KEY, CheckerLike, Guard, OnError, Verdict
from credit_check._middleware._reader import MAX_BODY, read_wsgi
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
        on_error: when the check cannot be completed or recorded: ``"unavailable"`` (the
            default: 503), ``"deny"`` (403) or ``"proceed"`` (the app is called with
            ``X-Credit-Check: error``, logged at ERROR each time). A DENY that was decided
            is refused (403) whatever this says. ``"review"`` is a deprecated alias of
            ``"proceed"``.
        department: the department handling the cases, put on each transaction.

    Attributes:
        errors: how many checks failed with an unexpected exception.
    """

    def __init__(self, app: WSGIApplication, *, checker: CheckerLike, routes: Sequence[Route],
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

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        try:  # everything we run in the host's request: a failure of ours is answered here
            found = self.routes.match(environ.get("REQUEST_METHOD", "GET"),
                                      _path(environ.get("PATH_INFO", "")))
            verdict = None if found is None else self._evaluate(environ, *found)
        except Exception as exc:
            verdict = self.guard.failed(None, exc, where=f"{environ.get('REQUEST_METHOD')} "
                                                         f"{environ.get('PATH_INFO')}")
        if verdict is None:
            return self.app(environ, start_response)
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

    def _evaluate(self, environ: WSGIEnvironment, route: Route,
                  params: dict[str, str]) -> Verdict:
        body: bytes | None = None
        if route.needs_body:
            body = read_wsgi(environ, self.max_body)
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


def _send_reply(reply: Reply, start_response: StartResponse) -> Iterable[bytes]:
    start_response(f"{reply.status} {reply.reason}", list(reply.headers))
    return [reply.body]
