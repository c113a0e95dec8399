"""The Django middleware (settings.CREDIT_CHECK) and credit_check_view, with django.test.Client."""

from __future__ import annotations

import json
import urllib.parse

from _django_site import CHECKER
from _middleware_fakes import (
    A_GRADE,
    ABNORMAL,
    BAD_USCC,
    BOOM,
    CLEAN,
    DEFAULTER,
    multipart,
    problem,
    sha,
)
from django.test import Client


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


def test_checker_failure_does_not_crash_the_site() -> None:
    r = Client().get("/firms", {"uscc": BOOM})
    assert r.status_code == 200 and r["X-Credit-Check"] == "error"


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
    assert r.status_code == 503
