"""Every outcome through both middlewares (ASGI and WSGI), with the same assertions."""

from __future__ import annotations

import json
import logging

import pytest
from _middleware_fakes import (
    A_GRADE,
    ABNORMAL,
    BOOM,
    CLEAN,
    DEFAULTER,
    DEGRADED,
    REMOTE,
    REP_DEFAULTER,
    problem,
    sha,
)

from credit_check._middleware._routes import FromJSON, Route

BID = Route("POST", "/bids/{tender_id}", "bidding", subject=FromJSON("bidder.uscc"),
            case_id=FromJSON("case_id"), item_code=FromJSON("item"))
LICENCE = Route("POST", "/licences", "licensing", subject=FromJSON("applicant.uscc"))
ACCESS = Route("POST", "/access", "market_access", subject=FromJSON("uscc"),
               legal_representative=FromJSON("rep"))
CONSORTIUM = Route("POST", "/consortium", "bidding", subject=FromJSON("lead"),
                   members=FromJSON("members.*.uscc"))
ROUTES = [BID, LICENCE, ACCESS, CONSORTIUM]


def bid(uscc: str) -> bytes:
    return json.dumps({"bidder": {"uscc": uscc, "name": "某公司"}, "case_id": "C-1",
                       "item": "ITEM-9", "price": 100}).encode()


def post(h, path, body, ctype="application/json"):
    return h.client.post(path, content=body, headers={"content-type": ctype})


def test_allow_proceeds_with_decision_attached_and_header(harness) -> None:
    h = harness(ROUTES, department="市公共资源交易中心")
    body = bid(CLEAN)
    r = post(h, "/bids/T-1", body)
    assert r.status_code == 200
    data = r.json()
    assert data["sha"] == sha(body) and data["content_length"] == str(len(body))
    assert data["outcome"] == "allow"
    (decision_id,) = data["decision_ids"]
    assert r.headers["x-credit-check"] == f"allow; decision={decision_id}"
    tx = h.checker.calls[0][2]
    assert (tx.scenario.value, tx.case_id, tx.item_code, tx.department) == (
        "bidding", "C-1", "ITEM-9", "市公共资源交易中心")


def test_deny_answers_403_problem_without_calling_the_app(harness) -> None:
    h = harness(ROUTES)
    r = post(h, "/bids/T-1", bid(DEFAULTER))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    body = problem(r.json())
    assert h.app.calls == 0
    assert body["status"] == 403 and body["outcome"] == "deny"
    assert r.headers["x-credit-check"] == f"deny; decision={body['decision_id']}"
    assert " / " in body["title"] and body["title_zh"] and body["detail_en"]
    (measure,) = body["measures"]
    assert measure["code"] == "P-001" and "政府采购法" in measure["legal_basis"]
    assert measure["implementing_department"]
    (entry,) = body["entries"]
    assert entry["issuing_department"] == "某市中级人民法院"
    assert "异议" in body["remedy"] and "credit repair" in body["remedy"]
    assert body["decisions"][0]["subject"]["id"] == DEFAULTER


def test_review_proceeds_by_default(harness) -> None:
    h = harness(ROUTES)
    r = post(h, "/licences", json.dumps({"applicant": {"uscc": DEFAULTER}}).encode())
    assert r.status_code == 200 and r.json()["outcome"] == "review"
    assert r.headers["x-credit-check"].startswith("review; decision=")


def test_review_hold_answers_202_without_calling_the_app(harness) -> None:
    h = harness(ROUTES, review="hold")
    r = post(h, "/licences", json.dumps({"applicant": {"uscc": DEFAULTER}}).encode())
    assert r.status_code == 202 and h.app.calls == 0
    body = r.json()
    assert body["status"] == "held" and body["outcome"] == "review"
    assert "manual review" in body["title"]


@pytest.mark.parametrize(("uscc", "outcome"), [(ABNORMAL, "restrict"),
                                                (A_GRADE, "green_channel")])
def test_restrict_and_green_channel_proceed(harness, uscc, outcome) -> None:
    h = harness(ROUTES)
    r = post(h, "/licences", json.dumps({"applicant": {"uscc": uscc}}).encode())
    assert r.status_code == 200 and r.json()["outcome"] == outcome
    assert r.headers["x-credit-check"].startswith(f"{outcome}; decision=")


def test_degraded_decision_acts_as_its_fallback_and_says_so(harness) -> None:
    h = harness(ROUTES, review="hold")
    r = post(h, "/bids/T-1", bid(DEGRADED))
    assert r.status_code == 202
    assert r.headers["x-credit-check"].endswith("; degraded")


def test_network_lookup_answer_proceeds(harness) -> None:
    h = harness(ROUTES)
    r = post(h, "/bids/T-1", bid(REMOTE))
    assert r.status_code == 200 and r.json()["outcome"] == "allow"
    assert h.checker.calls[-1][0] == "check"


def test_legal_representative_on_a_list_denies_market_access(harness) -> None:
    h = harness(ROUTES)
    r = post(h, "/access", json.dumps({"uscc": CLEAN, "rep": REP_DEFAULTER}).encode())
    assert r.status_code == 403
    text = r.text
    assert REP_DEFAULTER not in text  # the person's id is masked everywhere
    assert h.checker.subjects[0].legal_representative.id == REP_DEFAULTER


def test_consortium_uses_check_many_and_the_group_outcome(harness) -> None:
    h = harness(ROUTES)
    ok = {"lead": CLEAN, "members": [{"uscc": A_GRADE}, {"uscc": ABNORMAL}]}
    r = post(h, "/consortium", json.dumps(ok).encode())
    assert r.status_code == 200
    data = r.json()
    assert data["outcome"] == "allow" and len(data["decision_ids"]) == 3
    assert r.headers["x-credit-check"] == f"allow; decisions={','.join(data['decision_ids'])}"
    assert h.checker.calls[-1][:2] == ("check_many", (CLEAN, A_GRADE, ABNORMAL))
    bad = {"lead": CLEAN, "members": [{"uscc": DEFAULTER}]}
    r = post(h, "/consortium", json.dumps(bad).encode())
    assert r.status_code == 403
    body = r.json()
    assert body["decision_id"] is None and len(body["decision_ids"]) == 2
    assert [e["issuing_department"] for e in body["entries"]] == ["某市中级人民法院"]


def test_shadow_mode_reports_but_never_blocks(harness) -> None:
    h = harness(ROUTES, shadow=True, review="hold")
    r = post(h, "/bids/T-1", bid(DEFAULTER))
    assert r.status_code == 200 and r.json()["outcome"] == "deny"
    assert r.headers["x-credit-check"].endswith("; shadow")
    r = post(h, "/bids/T-1", b"{not json")
    assert r.status_code == 200 and r.headers["x-credit-check"] == "invalid; shadow"


def test_checker_failure_answers_503_by_default_and_is_logged_and_counted(harness,
                                                                         caplog) -> None:
    h = harness(ROUTES)
    with caplog.at_level(logging.ERROR, logger="credit_check.middleware"):
        r = post(h, "/bids/T-1", bid(BOOM))
    assert r.status_code == 503 and h.app.calls == 0
    assert r.headers["x-credit-check"] == "error"
    body = problem(r.json())
    assert body["type"].endswith("check-unavailable") and body["cause"] == "check"
    assert "could not be completed" in body["detail"]
    assert h.middleware.errors == 1
    assert "RuntimeError" in caplog.text and "on_error='unavailable'" in caplog.text


def test_checker_failure_with_on_error_proceed_calls_the_app_with_error_header(
        harness, caplog) -> None:
    h = harness(ROUTES, on_error="proceed")
    with caplog.at_level(logging.ERROR, logger="credit_check.middleware"):
        for _ in range(2):
            r = post(h, "/bids/T-1", bid(BOOM))
            assert r.status_code == 200 and r.json()["outcome"] is None
            assert r.headers["x-credit-check"] == "error"
    assert h.app.calls == 2 and h.middleware.errors == 2
    errors = [rec for rec in caplog.records if rec.levelno == logging.ERROR]
    assert len(errors) == 2 and all("on_error='proceed'" in rec.getMessage()
                                    for rec in errors)


def test_checker_failure_with_on_error_deny_answers_403(harness) -> None:
    h = harness(ROUTES, on_error="deny")
    r = post(h, "/bids/T-1", bid(BOOM))
    assert r.status_code == 403 and h.app.calls == 0
    assert problem(r.json())["type"].endswith("check-failed")
    assert h.middleware.errors == 1


def test_on_error_review_is_a_deprecated_alias_of_proceed(harness) -> None:
    with pytest.warns(DeprecationWarning, match='on_error="review" is deprecated'):
        h = harness(ROUTES, on_error="review")
    assert h.middleware.guard.on_error == "proceed"
    r = post(h, "/bids/T-1", bid(BOOM))
    assert r.status_code == 200 and r.headers["x-credit-check"] == "error"


def test_an_unknown_on_error_is_refused_naming_the_choices(harness) -> None:
    with pytest.raises(ValueError, match="on_error must be one of 'unavailable', 'deny', "
                                         "'proceed', not 'ignore'"):
        harness(ROUTES, on_error="ignore")
