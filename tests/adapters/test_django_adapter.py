"""The Django middleware (settings.CREDIT_CHECK) and credit_check_view, with django.test.Client."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.parse
from typing import Any

import pytest
from _django_site import CHECKER
from _middleware_fakes import (
    A_GRADE,
    ABNORMAL,
    BAD_USCC,
    BOOM,
    CLEAN,
    DEFAULTER,
    REMOTE,
    multipart,
    problem,
    sha,
)
from _unrecorded import Sandboxed
from credit_check.adapters.django import CreditCheckMiddleware, credit_check_view
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import AsyncClient, Client, RequestFactory, override_settings

from credit_check._middleware._routes import FromJSON, Route


def test_allow_reaches_the_view_with_the_decision_and_body_intact() -> None:
    body = json.dumps({"bidder": {"uscc": CLEAN}}).encode()
    r = Client().post("/bids/T-9", data=body, content_type="application/json")
    assert r.status_code == 200
    assert r.json()["sha"] == sha(body) and r.json()["outcome"] == "allow"
    assert r["X-Credit-Check"].startswith("allow; decision=")
    tx = CHECKER.calls[-1][2]
    assert (tx.case_id, tx.department) == ("T-9", "市行政审批局")


def test_deny_is_a_403_problem_and_the_view_is_not_called() -> None:
    body = json.dumps({"bidder": {"uscc": DEFAULTER}}).encode()
    r = Client().post("/bids/T-9", data=body, content_type="application/json")
    assert r.status_code == 403 and r["Content-Type"] == "application/problem+json"
    data = problem(r.json())
    assert data["measures"][0]["legal_basis"] and data["remedy"]


def test_form_and_multipart_bodies_still_reach_request_post() -> None:
    form = urllib.parse.urlencode({"uscc": ABNORMAL, "x": "1"})
    r = Client().post("/licences", data=form, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 200 and r.json()["outcome"] == "restrict"
    assert r.json()["post"] == {"uscc": ABNORMAL, "x": "1"}
    body, ctype = multipart({"uscc": A_GRADE}, file=("f.bin", b"\x00\x01" * 100))
    r = Client().generic("POST", "/licences", data=body, content_type=ctype)
    assert r.status_code == 200 and r.json()["outcome"] == "green_channel"
    assert r.json()["sha"] == sha(body) and r.json()["post"] == {"uscc": A_GRADE}


def test_review_is_held_per_settings() -> None:
    form = urllib.parse.urlencode({"uscc": DEFAULTER})
    r = Client().post("/licences", data=form, content_type="application/x-www-form-urlencoded")
    assert r.status_code == 202 and r.json()["status"] == "held"


def test_invalid_and_missing_identifiers_answer_400() -> None:
    r = Client().get("/firms", {"uscc": BAD_USCC})
    assert r.status_code == 400 and r.json()["field"] == "query:uscc"
    r = Client().get("/firms")
    assert r.status_code == 400 and r.json()["problem"] == "missing"


def test_unguarded_paths_pass_through() -> None:
    before = len(CHECKER.calls)
    assert Client().get("/open").status_code == 200
    assert Client().get("/bids/T-1").status_code == 200  # GET is not guarded
    assert len(CHECKER.calls) == before


def test_checker_failure_does_not_crash_the_site_and_answers_503() -> None:
    r = Client().get("/firms", {"uscc": BOOM})
    assert r.status_code == 503 and r["X-Credit-Check"] == "error"
    assert problem(r.json())["type"].endswith("check-unavailable")


def test_view_decorator_reads_url_kwargs_and_sets_the_decision() -> None:
    r = Client().get(f"/view/licences/{ABNORMAL}")
    assert r.status_code == 200 and r.json()["outcome"] == "restrict"
    assert r.json()["uscc"] == ABNORMAL and r["X-Credit-Check"].startswith("restrict")
    r = Client().get(f"/view/licences/{DEFAULTER}")
    assert r.status_code == 202  # "review": "hold" comes from settings


def test_view_decorator_json_body_and_its_own_on_error() -> None:
    r = Client().post("/view/bids", data={"uscc": CLEAN}, content_type="application/json")
    assert r.status_code == 200 and r.json()["json"] == {"uscc": CLEAN}
    r = Client().post("/view/bids", data={"uscc": DEFAULTER}, content_type="application/json")
    assert r.status_code == 403
    r = Client().post("/view/bids", data={"uscc": BOOM}, content_type="application/json")
    assert r.status_code == 403 and problem(r.json())["type"].endswith("check-failed")


def test_an_odd_content_length_is_answered_not_raised_into_django() -> None:
    """Content-Length: ² (a digit to str.isdigit, not to int; Django's request.body raises
    ValueError on it): the middleware and the view decorator answer 400, naming it."""
    body = json.dumps({"bidder": {"uscc": CLEAN}}).encode()
    for path in ("/bids/T-9", "/view/bids", "/view/async-bids"):
        r = Client().generic("POST", path, body, content_type="application/json",
                             CONTENT_LENGTH="²")
        assert r.status_code == 400, path
        assert problem(r.json())["field"] == "header:content-length"


def test_view_decorator_guards_an_async_view_through_the_test_client() -> None:
    r = Client().post("/view/async-bids", data={"uscc": CLEAN}, content_type="application/json")
    assert r.status_code == 200 and r.json()["outcome"] == "allow"
    assert r.json()["json"] == {"uscc": CLEAN} and r["X-Credit-Check"].startswith("allow;")
    r = Client().post("/view/async-bids", data={"uscc": DEFAULTER},
                      content_type="application/json")
    assert r.status_code == 403
    r = Client().post("/view/async-bids", data={"uscc": BOOM}, content_type="application/json")
    assert r.status_code == 503


def test_view_decorator_guards_an_async_view_through_the_asgi_handler() -> None:
    """AsyncClient runs Django's ASGI handler: the view in its event loop, the lookup in a
    worker thread."""

    async def run() -> list[Any]:
        client = AsyncClient()
        return [await client.post("/view/async-bids", data={"uscc": uscc},
                                  content_type="application/json")
                for uscc in (CLEAN, DEFAULTER, REMOTE)]

    clean, deny, remote = asyncio.run(run())
    assert clean.status_code == 200 and clean.json()["outcome"] == "allow"
    assert deny.status_code == 403 and problem(deny.json())["outcome"] == "deny"
    assert remote.status_code == 200 and CHECKER.calls[-1][0] == "check"
    assert CHECKER.calls[-1][3] != threading.main_thread().name


# --- DESIGN rule 13 with a real Checker whose records cannot be written ------------------

def _echo(request: HttpRequest) -> HttpResponse:
    decision = getattr(request, "credit_decision", None)
    return JsonResponse({"outcome": decision.outcome.value if decision else None})


async def _async_echo(request: HttpRequest) -> HttpResponse:
    return _echo(request)


def _post(uscc: str) -> HttpRequest:
    return RequestFactory().post("/bids", data={"uscc": uscc}, content_type="application/json")


def test_middleware_refuses_an_unrecorded_deny_and_answers_503_for_a_clean_firm(
        sandbox: Sandboxed) -> None:
    config = {"checker": sandbox.unrecorded,
              "routes": [Route("POST", "/bids", "bidding", subject=FromJSON("uscc"))]}
    with override_settings(CREDIT_CHECK=config):
        middleware = CreditCheckMiddleware(_echo)
    assert middleware(_post(sandbox.defaulter)).status_code == 403
    r = middleware(_post(sandbox.clean))
    assert r.status_code == 503 and json.loads(r.content)["cause"] == "record"


@pytest.mark.parametrize("on_error", ["unavailable", "deny", "proceed"])
def test_view_decorator_refuses_an_unrecorded_deny_whatever_on_error_says(
        sandbox: Sandboxed, on_error: str) -> None:
    guard = credit_check_view(scenario="bidding", subject=FromJSON("uscc"),
                              checker=sandbox.unrecorded, on_error=on_error)
    view, async_view = guard(_echo), guard(_async_echo)
    clean = {"unavailable": 503, "deny": 403, "proceed": 200}[on_error]
    assert view(_post(sandbox.defaulter)).status_code == 403
    assert view(_post(sandbox.clean)).status_code == clean
    assert asyncio.run(async_view(_post(sandbox.defaulter))).status_code == 403
    r = asyncio.run(async_view(_post(sandbox.clean)))
    assert r.status_code == clean and r["X-Credit-Check"] == "error"
