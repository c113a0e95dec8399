"""Flask integration: the WSGI middleware around ``app.wsgi_app``, and a view decorator.

    ext = CreditCheck(app, checker=checker, routes=[Route("POST", "/bids", "bidding",
                                                          subject=FromJSON("bidder.uscc"))])

    @app.post("/licences/<uscc>")
    @ext.guard(scenario="licensing", subject=FromPath("uscc"))
    def licence(uscc): ...   # flask.g.credit_decision holds the Decision (async def works too)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

try:
    import flask
    from werkzeug.exceptions import RequestEntityTooLarge
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "credit_check.adapters.flask needs Flask: pip install 'credit-check[flask]'"
    ) from exc

from credit_check._middleware._body import RequestData
from credit_check._middleware._guard import ENVIRON_KEY, CheckerLike, Guard, Verdict
from credit_check._middleware._reader import MAX_BODY, BodyRefused, read_kept
from credit_check._middleware._respond import HEADER, Reply, too_large
from credit_check._middleware._routes import Extractor, Route
from credit_check._middleware._wsgi import CreditCheckWSGIMiddleware

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["CreditCheck"]


class CreditCheck:
    """The Flask extension.

    Args:
        app: the Flask app, or None to call :meth:`init_app` later (app factories).
        checker: the :class:`~credit_check.Checker`; when None, ``app.config
            ["CREDIT_CHECK_CHECKER"]`` is used.
        routes: route rules guarded by the WSGI middleware (before Flask routing).
        options: ``max_body``, ``review``, ``shadow``, ``on_error``, ``department`` —
            as for :class:`~credit_check.CreditCheckWSGIMiddleware`.
    """

    def __init__(self, app: flask.Flask | None = None, *, checker: CheckerLike | None = None,
                 routes: Sequence[Route] = (), **options: Any) -> None:
        self.checker = checker
        self.routes = tuple(routes)
        self.options = options
        self.middleware: CreditCheckWSGIMiddleware | None = None
        self._guard: Guard | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask) -> None:
        """Wrap ``app.wsgi_app`` with the WSGI middleware and expose decisions on ``g``."""
        checker = self.checker or app.config.get("CREDIT_CHECK_CHECKER")
        if checker is None:
            raise ValueError("CreditCheck needs a checker: CreditCheck(app, checker=...) or "
                             "app.config['CREDIT_CHECK_CHECKER']")
        self.checker = checker
        self.middleware = CreditCheckWSGIMiddleware(app.wsgi_app, checker=checker,
                                                    routes=self.routes, **self.options)
        self._guard = self.middleware.guard
        app.wsgi_app = self.middleware  # type: ignore[method-assign]
        app.extensions["credit_check"] = self
        app.before_request(_expose_decision)

    @property
    def errors(self) -> int:
        """How many checks failed with an unexpected exception."""
        return self._guard.errors if self._guard is not None else 0

    def guard(self, *, scenario: str, subject: Extractor | None = None,
              **route_options: Any) -> Callable[[F], F]:
        """Guard one view, plain or ``async def``: check before it runs, put the Decision on
        ``flask.g``.

        Args:
            scenario: the transaction's scenario.
            subject: where the identifier is; ``FromPath`` reads the view's URL variables.
            route_options: ``legal_representative``, ``members``, ``case_id``,
                ``item_code``, ``department`` as for :class:`~credit_check.Route`.

        An ``async def`` view (``pip install 'flask[async]'``) is checked without blocking
        its event loop: the snapshot answer in the loop, a lookup in a worker thread.
        """
        route = Route("*", "*", scenario, subject=subject, **route_options)

        def decorator(view: F) -> F:
            if inspect.iscoroutinefunction(view):
                @functools.wraps(view)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    guard = self._ready()
                    try:
                        verdict = await guard.evaluate_async(route,
                                                             self._request_data(route, kwargs))
                    except Exception as exc:  # a failure of ours is answered here
                        verdict = guard.failed(None, exc, where=_where())
                    refused = _apply(verdict)
                    return refused if refused is not None else await view(*args, **kwargs)

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(view)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                guard = self._ready()
                try:
                    verdict = guard.evaluate(route, self._request_data(route, kwargs))
                except Exception as exc:  # a failure of ours is answered here
                    verdict = guard.failed(None, exc, where=_where())
                refused = _apply(verdict)
                return refused if refused is not None else view(*args, **kwargs)

            return wrapper  # type: ignore[return-value]

        return decorator

    def _ready(self) -> Guard:
        if self._guard is None:
            raise RuntimeError("CreditCheck.guard used before init_app(app)")
        return self._guard

    @property
    def _limit(self) -> int:
        return self.middleware.max_body if self.middleware else MAX_BODY

    def _request_data(self, route: Route, view_args: dict[str, Any]) -> RequestData:
        """What the extractors read.

        Raises:
            BodyRefused: the body is over the limit, or its Content-Length is no number.
        """
        request = flask.request
        body = _read(request, self._limit) if route.needs_body else None
        return RequestData(headers={k.lower(): v for k, v in request.headers.items()},
                           query_string=request.query_string.decode("latin-1"),
                           path_params={k: str(v) for k, v in view_args.items()}, body=body)


def _read(request: flask.Request, limit: int) -> bytes:
    # cache=True: the view can still read request.json / request.form afterwards. A body
    # without Content-Length (the server ends the stream) is bounded by the request's own
    # limit, which werkzeug applies by cutting the body short without a word: so one byte
    # past the smaller of the app's limit and ours, to tell an over-limit body apart.
    own = request.max_content_length
    cap = limit if own is None else min(own, limit)
    request.max_content_length = cap + 1
    try:
        body = read_kept(request.headers.get("Content-Length"),
                         lambda: request.get_data(cache=True), cap)
    except RequestEntityTooLarge:
        raise BodyRefused(too_large(cap)) from None
    finally:
        request.max_content_length = own
    return body


def _apply(verdict: Verdict) -> flask.Response | None:
    """The response refusing the request, or None after putting the decision on ``g`` and
    the header on the coming response."""
    if verdict.reply is not None:
        return _response(verdict.reply)
    flask.g.credit_decision = verdict.decision
    header = verdict.header
    if header is not None:
        @flask.after_this_request
        def add_header(response: flask.Response) -> flask.Response:
            response.headers[HEADER] = header
            return response
    return None


def _where() -> str:
    return f"{flask.request.method} {flask.request.path}"


def _expose_decision() -> None:
    decision = flask.request.environ.get(ENVIRON_KEY)
    if decision is not None:
        flask.g.credit_decision = decision


def _response(reply: Reply) -> flask.Response:
    return flask.Response(reply.body, status=reply.status, headers=list(reply.headers))
