"""URLconf, views and CREDIT_CHECK settings of the Django adapter tests."""

from __future__ import annotations

import hashlib
import json

from _middleware_fakes import FakeChecker
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from credit_check._middleware._routes import FromForm, FromJSON, FromPath, FromQuery, Route

CHECKER = FakeChecker()


def make_checker() -> FakeChecker:
    """The zero-argument factory named in settings."""
    return CHECKER


CREDIT_CHECK = {
    "checker": "_django_site.make_checker",
    "routes": [
        Route("POST", "/bids/{tender_id}", "bidding", subject=FromJSON("bidder.uscc"),
              case_id=FromPath("tender_id")),
        Route("POST", "/licences", "licensing", subject=FromForm("uscc")),
        Route("GET", "/firms", "bidding", subject=FromQuery("uscc")),
    ],
    "review": "hold",
    "department": "市行政审批局",
}


def _describe(request: HttpRequest) -> dict[str, object]:
    decision = getattr(request, "credit_decision", None)
    return {"sha": hashlib.sha256(request.body).hexdigest(),
            "outcome": decision.outcome.value if decision is not None else None,
            "post": dict(request.POST.items())}


def echo(request: HttpRequest, **kwargs: str) -> HttpResponse:
    return JsonResponse(_describe(request))


def _guarded_view() -> object:
    from credit_check.adapters.django import credit_check_view

    @credit_check_view(scenario="licensing", subject=FromPath("uscc"))
    def licence(request: HttpRequest, uscc: str) -> HttpResponse:
        return JsonResponse({**_describe(request), "uscc": uscc})

    @credit_check_view(scenario="bidding", subject=FromJSON("uscc"), on_error="deny")
    def bid(request: HttpRequest) -> HttpResponse:
        return JsonResponse({**_describe(request), "json": json.loads(request.body)})

    @credit_check_view(scenario="bidding", subject=FromJSON("uscc"))
    async def async_bid(request: HttpRequest) -> HttpResponse:
        return JsonResponse({**_describe(request), "json": json.loads(request.body)})

    return licence, bid, async_bid


licence_view, bid_view, async_bid_view = _guarded_view()

urlpatterns = [
    path("bids/<str:tender_id>", echo),
    path("licences", echo),
    path("firms", echo),
    path("open", echo),
    path("view/licences/<str:uscc>", licence_view),
    path("view/bids", bid_view),
    path("view/async-bids", async_bid_view),
]
