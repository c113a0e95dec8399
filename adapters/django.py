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
from credit_check._middleware._respond import HEADER, Reply
from credit_check._middleware._routes import Extractor, Route, RouteTable

__all__ = ["CreditCheckMiddleware", "credit_check_view"]

F = TypeVar("F", bound=Callable[..., HttpResponse])
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
        self.max_body = int(config.get("max_body", 1_048_576))
        self.guard = _guard(config)

    @property
    def errors(self) -> int:
        """How many checks failed with an unexpected exception."""
        return self.guard.errors

    def __call__(self, request: HttpRequest) -> HttpResponse:
        found = self.routes.match(request.method or "GET", request.path_info)
        if found is None:
            return self.get_response(request)
        verdict = _evaluate(self.guard, found[0], request, found[1], self.max_body)
        return _respond(verdict, request, self.get_response)


def credit_check_view(*, scenario: str, subject: Extractor | None = None,
                      checker: CheckerLike | None = None, max_body: int | None = None,
                      **options: Any) -> Callable[[F], F]:
    """Guard one view; the decision is on ``request.credit_decision``.

    Args:
        scenario: the transaction's scenario.
        subject: where the identifier is; ``FromPath`` reads the view's URL kwargs.
        checker: the Checker; by default the one of ``settings.CREDIT_CHECK``.
        max_body: the largest body read; by default ``CREDIT_CHECK["max_body"]`` or 1 MiB.
        options: route options (``legal_representative``, ``members``, ``case_id``,
            ``item_code``, ``department``) and policy options (``review``, ``shadow``,
            ``on_error``) — the latter default to ``settings.CREDIT_CHECK``.
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
            state["max_body"] = max_body or int(config.get("max_body", 1_048_576))
        return state["guard"], state["max_body"]

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            g, limit = guard()
            verdict = _evaluate(g, route, request, {k: str(v) for k, v in kwargs.items()},
                                limit)
            return _respond(verdict, request, lambda r: view(r, *args, **kwargs))

        return wrapper  # type: ignore[return-value]

    return decorator


def _evaluate(guard: Guard, route: Route, request: HttpRequest, params: dict[str, str],
              limit: int) -> Verdict:
    body: bytes | None = None
    if route.needs_body:
        declared = request.META.get("CONTENT_LENGTH") or ""
        if declared.isdigit() and int(declared) > limit:
            return guard.too_large(limit)
        try:
            # request.body is cached: request.POST and the view read it again afterwards
            body = request.body
        except RequestDataTooBig:
            return guard.too_large(limit)
        if len(body) > limit:
            return guard.too_large(limit)
    data = RequestData(headers={k.lower(): v for k, v in request.headers.items()},
                       query_string=request.META.get("QUERY_STRING", ""),
                       path_params=params, body=body)
    return guard.evaluate(route, data)


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
