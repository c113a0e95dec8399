"""Django integration: a middleware configured by ``settings.CREDIT_CHECK``, and a view decorator.

    # settings.py
    MIDDLEWARE = [..., "credit_check.adapters.django.CreditCheckMiddleware"]
    CREDIT_CHECK = {
        "checker": "myproject.credit.make_checker",   # a Checker, or a dotted zero-arg factory
        "routes": [Route("POST", "/bids/{tender_id}", "bidding", subject=FromForm("uscc"))],
        "review": "hold",                             # max_body, shadow, on_error, department
    }

The decision is on ``request.credit_decision``; the response carries ``X-Credit-Check``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

try:
    from asgiref.sync import iscoroutinefunction
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig
    from django.http import HttpRequest, HttpResponse
    from django.utils.module_loading import import_string
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "credit_check.adapters.django needs Django: pip install 'credit-check[django]'"
    ) from exc

from credit_check._middleware._body import RequestData
from credit_check._middleware._guard import CheckerLike, Guard, Verdict
from credit_check._middleware._reader import MAX_BODY, BodyRefused, read_kept
from credit_check._middleware._respond import HEADER, Reply, too_large
from credit_check._middleware._routes import Extractor, Route, RouteTable

__all__ = ["CreditCheckMiddleware", "credit_check_view"]

F = TypeVar("F", bound=Callable[..., Any])
_OPTIONS = ("review", "shadow", "on_error", "department")
_cache: dict[str, CheckerLike] = {}


def _config() -> dict[str, Any]:
    config = getattr(settings, "CREDIT_CHECK", None)
    if not isinstance(config, dict):
        raise ImproperlyConfigured("settings.CREDIT_CHECK must be a dict with 'checker' and "
                                   "'routes' (see docs/middleware.md)")
    return config


def _checker(config: dict[str, Any]) -> CheckerLike:
    value = config.get("checker")
    if value is None:
        raise ImproperlyConfigured("settings.CREDIT_CHECK['checker'] is missing: give a "
                                   "Checker or the dotted path of a zero-argument factory")
    if isinstance(value, str):
        # One checker per factory path and process: a Checker owns threads and a data dir.
        if value not in _cache:
            _cache[value] = import_string(value)()
        return _cache[value]
    return value  # type: ignore[no-any-return]


def _guard(config: dict[str, Any]) -> Guard:
    return Guard(_checker(config), **{k: config[k] for k in _OPTIONS if k in config})


class CreditCheckMiddleware:
    """Check the subject of every request matching ``settings.CREDIT_CHECK["routes"]``.

    Route patterns are matched against ``request.path_info``. Denied, held and invalid
    requests are answered here; others reach the view with ``request.credit_decision``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        config = _config()
        self.get_response = get_response
        self.routes = RouteTable(config.get("routes", ()))
        self.max_body = int(config.get("max_body", MAX_BODY))
        self.guard = _guard(config)

    @property
    def errors(self) -> int:
        """How many checks failed with an unexpected exception."""
        return self.guard.errors

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:  # everything we run in the host's request: a failure of ours is answered here
            found = self.routes.match(request.method or "GET", request.path_info)
            verdict = None if found is None else _evaluate(
                self.guard, found[0], request, found[1], self.max_body)
        except Exception as exc:
            verdict = self.guard.failed(None, exc, where=_where(request))
        if verdict is None:
            return self.get_response(request)
        return _respond(verdict, request, self.get_response)


def credit_check_view(*, scenario: str, subject: Extractor | None = None,
                      checker: CheckerLike | None = None, max_body: int | None = None,
                      **options: Any) -> Callable[[F], F]:
    """Guard one view, plain or ``async def``; the decision is on ``request.credit_decision``.

    Args:
        scenario: the transaction's scenario.
        subject: where the identifier is; ``FromPath`` reads the view's URL kwargs.
        checker: the Checker; by default the one of ``settings.CREDIT_CHECK``.
        max_body: the largest body read; by default ``CREDIT_CHECK["max_body"]`` or 1 MiB.
        options: route options (``legal_representative``, ``members``, ``case_id``,
            ``item_code``, ``department``) and policy options (``review``, ``shadow``,
            ``on_error``) — the latter default to ``settings.CREDIT_CHECK``.

    An ``async def`` view is checked without blocking its event loop: the snapshot answer
    in the loop, a lookup in a worker thread (as the ASGI middleware does).
    """
    policy = {k: options.pop(k) for k in _OPTIONS if k in options and k != "department"}
    route = Route("*", "*", scenario, subject=subject, **options)
    state: dict[str, Any] = {}

    def guard() -> tuple[Guard, int]:
        if "guard" not in state:  # settings are read on first use, not at import time
            config = dict(getattr(settings, "CREDIT_CHECK", None) or {})
            config.update(policy)
            if checker is not None:
                config["checker"] = checker
            state["guard"] = _guard(config)
            state["max_body"] = max_body or int(config.get("max_body", MAX_BODY))
        return state["guard"], state["max_body"]

    def decorator(view: F) -> F:
        if iscoroutinefunction(view):
            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any,
                                    **kwargs: Any) -> HttpResponse:
                g, limit = guard()
                try:
                    verdict = await _evaluate_async(g, route, request, _params(kwargs), limit)
                except Exception as exc:  # a failure of ours is answered here
                    verdict = g.failed(None, exc, where=_where(request))
                if verdict.reply is not None:
                    return _response(verdict.reply)
                request.credit_decision = verdict.decision
                response: HttpResponse = await view(request, *args, **kwargs)
                if verdict.header is not None:
                    response[HEADER] = verdict.header
                return response

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            g, limit = guard()
            try:
                verdict = _evaluate(g, route, request, _params(kwargs), limit)
            except Exception as exc:  # a failure of ours is answered here
                verdict = g.failed(None, exc, where=_where(request))
            return _respond(verdict, request, lambda r: view(r, *args, **kwargs))

        return wrapper  # type: ignore[return-value]

    return decorator


def _params(kwargs: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in kwargs.items()}


def _where(request: HttpRequest) -> str:
    return f"{request.method} {request.path_info}"


def _request_data(request: HttpRequest, params: dict[str, str], limit: int,
                  route: Route) -> RequestData:
    """What the extractors read.

    Raises:
        BodyRefused: the body is over ``limit`` (or Django's own), or its Content-Length
            is no number.
    """
    body: bytes | None = None
    if route.needs_body:
        try:
            # request.body is kept: request.POST and the view read it again afterwards.
            body = read_kept(request.META.get("CONTENT_LENGTH"), lambda: request.body, limit)
        except RequestDataTooBig:  # over DATA_UPLOAD_MAX_MEMORY_SIZE
            raise BodyRefused(too_large(limit)) from None
    return RequestData(headers={k.lower(): v for k, v in request.headers.items()},
                       query_string=request.META.get("QUERY_STRING", ""),
                       path_params=params, body=body)


def _evaluate(guard: Guard, route: Route, request: HttpRequest, params: dict[str, str],
              limit: int) -> Verdict:
    return guard.evaluate(route, _request_data(request, params, limit, route))


async def _evaluate_async(guard: Guard, route: Route, request: HttpRequest,
                          params: dict[str, str], limit: int) -> Verdict:
    # Under ASGI Django has the body in memory (or a spooled file) before the view runs.
    return await guard.evaluate_async(route, _request_data(request, params, limit, route))


def _respond(verdict: Verdict, request: HttpRequest,
             get_response: Callable[[HttpRequest], HttpResponse]) -> HttpResponse:
    if verdict.reply is not None:
        return _response(verdict.reply)
    request.credit_decision = verdict.decision
    response = get_response(request)
    if verdict.header is not None:
        response[HEADER] = verdict.header
    return response


def _response(reply: Reply) -> HttpResponse:
    response = HttpResponse(reply.body, status=reply.status)
    for key, value in reply.headers:
        response[key] = value
    return response
