"""The 信用承诺 ledger through the Checker: commit, fulfil, waive, and clear refusals."""

from __future__ import annotations

import datetime as dt

import pytest
from _lifecycle_support import Clock, MakeChecker, admin, list_subject, received

from credit_check import (
    InvalidArgument,
    Outcome,
    Transaction,
    UnknownCommitment,
    UnknownDecision,
)
from credit_check._models import CST
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE, demo_catalog


def green(checker: object, case_id: str = "XK-L1") -> str:
    d = checker.check(SHOWCASE["a_grade_org"],  # type: ignore[attr-defined]
                      Transaction(scenario="licensing", case_id=case_id))
    assert d.outcome is Outcome.GREEN_CHANNEL
    return str(d.decision_id)


def test_materials_received_in_two_steps_fulfil_the_commitment(
        make_checker: MakeChecker, sandbox: SandboxServer) -> None:
    checker = make_checker()
    c = checker.commit(green(checker), items=["设备清单", "健康证明"], due=dt.date.today()
                       + dt.timedelta(days=10), operator="窗口A01")
    assert c.state == "open" and c.outstanding == ("设备清单", "健康证明")
    assert c.case_id == "XK-L1" and c.subject == SHOWCASE["a_grade_org"]
    c = checker.fulfil(c.commitment_id, ["设备清单"])
    assert (c.state, c.received, c.outstanding) == ("open", ("设备清单",), ("健康证明",))
    c = checker.fulfil(c.commitment_id, ["健康证明"], operator="窗口A02")
    assert c.state == "fulfilled" and c.outstanding == ()
    with pytest.raises(InvalidArgument, match="fulfilled already"):
        checker.fulfil(c.commitment_id, ["健康证明"])
    checker.close()
    kinds = [(r["kind"], r.get("items"), r["operator"]) for r in received(sandbox)
             if r["kind"].startswith("commitment")]
    assert kinds == [("commitment", ["设备清单", "健康证明"], "窗口A01"),
                     ("commitment_fulfilled", ["设备清单"], None),
                     ("commitment_fulfilled", ["健康证明"], "窗口A02")]


def test_a_waived_commitment_is_never_breached(
        make_checker: MakeChecker, sandbox: SandboxServer, clock: Clock) -> None:
    checker = make_checker()
    c = checker.commit(green(checker), items=["设备清单"], working_days=1)
    c = checker.waive(c.commitment_id, "设备清单已由部门核验 / checked by the department")
    assert c.state == "waived"
    clock.set(dt.datetime.now(CST) + dt.timedelta(days=30))
    assert checker.sync()
    assert checker.commitments()[0].state == "waived"
    checker.close()
    assert received(sandbox, "commitment_breached") == []
    (w,) = received(sandbox, "commitment_waived")
    assert w["note"].startswith("设备清单已由部门核验")


def test_a_due_date_in_a_year_without_a_known_schedule_is_provisional(
        make_checker: MakeChecker) -> None:
    checker = make_checker()
    c = checker.commit(green(checker), items=["设备清单"], due="2031-03-01")
    assert c.due == dt.date(2031, 3, 1) and c.provisional


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"items": ["x"]}, "either due"),
    ({"items": ["x"], "due": "2030-01-01", "working_days": 3}, "either due"),
    ({"items": [], "working_days": 3}, "1 to 50 items"),
    ({"items": "设备清单", "working_days": 3}, "a list of items"),
    ({"items": ["x" * 201], "working_days": 3}, "at most 200"),
    ({"items": ["x"], "working_days": 0}, "from 1 to 366"),
    ({"items": ["x"], "due": "next week"}, "not a date"),
    ({"items": ["x"], "due": "2020-01-01"}, "in the past"),
])
def test_a_bad_commitment_is_refused_naming_the_argument(
        make_checker: MakeChecker, kwargs: dict[str, object], message: str) -> None:
    checker = make_checker()
    with pytest.raises(InvalidArgument, match=message):
        checker.commit(green(checker), **kwargs)  # type: ignore[arg-type]
    assert checker.commitments() == []


def test_no_commitment_on_a_decision_that_excludes_facilitation(
        make_checker: MakeChecker) -> None:
    checker = make_checker()
    d = checker.check(SHOWCASE["watch_org"], Transaction(scenario="licensing", case_id="XK-R"))
    assert d.outcome is Outcome.RESTRICT
    with pytest.raises(InvalidArgument, match="restrict"):
        checker.commit(d.decision_id, items=["x"], working_days=3)
    with pytest.raises(UnknownDecision):
        checker.commit("no-such-decision", items=["x"], working_days=3)
    with pytest.raises(UnknownCommitment):
        checker.fulfil("no-such-commitment", ["x"])
    c = checker.commit(green(checker), items=["设备清单"], working_days=3)
    with pytest.raises(InvalidArgument, match="not an item"):
        checker.fulfil(c.commitment_id, ["营业执照"])
    with pytest.raises(InvalidArgument, match="say why"):
        checker.waive(c.commitment_id, " ")


def test_a_catalogue_list_of_commitment_breakers_feeds_the_next_decision(
        make_checker: MakeChecker, sandbox: SandboxServer) -> None:
    catalog = demo_catalog()
    catalog["lists"].append({"code": "credit.commitment_breach", "kind": "black",
                             "name": "信用承诺失信（违诺）名单", "suspend_on_objection": True})
    catalog["measures"].append({
        "code": "P-090", "name": "不适用告知承诺、容缺受理", "effect": "restrict",
        "list_codes": ["credit.commitment_breach"], "scenarios": ["licensing"],
        "target": "subject", "legal_basis": "示例依据（虚构）",
        "implementing_department": "各行政审批部门"})
    admin(sandbox, "PUT", "/v1/admin/catalog", json=catalog)
    list_subject(sandbox, "breach-1", SHOWCASE["unknown_org"],
                 list_code="credit.commitment_breach")
    checker = make_checker()
    d = checker.check(SHOWCASE["unknown_org"],
                      Transaction(scenario="licensing", case_id="XK-B2"))
    assert d.outcome is Outcome.RESTRICT and [m.code for m in d.measures] == ["P-090"]
    with pytest.raises(InvalidArgument, match="restrict"):
        checker.commit(d.decision_id, items=["设备清单"], working_days=5)


def test_the_case_report_names_the_lifecycle_records(make_checker: MakeChecker) -> None:
    checker = make_checker()
    c = checker.commit(green(checker, "XK-RPT"), items=["设备清单"], working_days=5)
    assert checker.sync()                     # the follower opens the case's follow-up
    checker.fulfil(c.commitment_id, ["设备清单"])
    html = checker.case_report("XK-RPT")
    for words in ("核查 / check", "信用承诺 / commitment", "承诺履约 / commitment fulfilled",
                  "开始事中跟踪 / follow-up opened", "信用承诺台账 / commitment ledger"):
        assert words in html
