"""Django liveness and readiness views (DESIGN §9.8) for load balancers and orchestrators.

    # urls.py
    from credit_check.adapters.django_health import healthz, readiness_view
    urlpatterns = [
        path("healthz", healthz),               # the process answers
        path("readyz", readiness_view()),       # settings.CREDIT_CHECK["checker"], or give one
    ]

``/readyz`` answers 200 when a catalogue is present and decision records can be written,
else 503 with the problems; stale data is reported in the body and keeps the instance
ready (its checks go online, or degrade and are post-checked).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    from django.http import HttpRequest, HttpResponse, JsonResponse
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "credit_check.adapters.django_health needs Django: pip install 'credit-check[django]'"
    ) from exc

from credit_check._readiness import HEALTHY, endpoint_answer

__all__ = ["healthz", "readiness_view"]


def healthz(request: HttpRequest) -> HttpResponse:
    """200 while the process answers (liveness)."""
    return JsonResponse(HEALTHY)


def readiness_view(checker: Any = None) -> Callable[[HttpRequest], HttpResponse]:
    """A view answering the checker's readiness: 200 ready, 503 not (with the problems).

    Args:
        checker: a Checker, or a zero-argument callable returning one; None takes the
            checker of ``settings.CREDIT_CHECK`` (the middleware's, the same object).
    """

    def source() -> Any:
        if checker is not None:
            return checker
        from credit_check.adapters.django import (  # type: ignore[import-not-found,unused-ignore]
            _checker,
            _config,
        )

        return _checker(_config())

    def view(request: HttpRequest) -> HttpResponse:
        status, body = endpoint_answer(source)
        return JsonResponse(body, status=status, json_dumps_params={"ensure_ascii": False})

    return view
