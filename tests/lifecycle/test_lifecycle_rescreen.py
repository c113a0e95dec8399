"""Re-screening watched cases after a sync, against the real sandbox (DESIGN §9.3)."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest
from _lifecycle_support import MakeChecker, admin, list_subject, received

from credit_check import Decision, Outcome, Subject, Transaction, mask_id
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE, make_id_number


def tx(case_id: str, scenario: str = "licensing") -> Transaction:
    return Transaction(scenario=scenario, case_id=case_id)


def test_a_green_channel_case_listed_mid_case_is_rescreened_once(
        make_checker: MakeChecker, sandbox: SandboxServer) -> None:
    seen: list[tuple[Decision, Decision]] = []
    checker = make_checker(on_rescreen=lambda a, b: seen.append((a, b)))
    org = SHOWCASE["a_grade_org"]
    d = checker.check(org, tx("XK-2026-001"))
    assert d.outcome is Outcome.GREEN_CHANNEL
    assert checker.sync()  # the follower watches the case from its decision record
    assert checker.status().watched == 1 and seen == []

    list_subject(sandbox, "mid-case-1", org)   # a red-listed firm newly blacklisted
    assert checker.sync()
    assert len(seen) == 1
    original, new = seen[0]
    assert original.decision_id == d.decision_id and original.outcome is Outcome.GREEN_CHANNEL
    assert new.outcome is Outcome.REVIEW and "mid-case-1" in {m.entry_id for m in new.matches}
    assert checker.sync() and len(seen) == 1  # nothing new: nothing again
    checker.close()
    rescreens = received(sandbox, "rescreen")
    assert len(rescreens) == 1
    r = rescreens[0]
    assert r["decision_id"] == d.decision_id and r["previous_outcome"] == "green_channel"
    assert r["outcome"] == "review" and r["lift"] is False
    assert r["transaction"]["case_id"] == "XK-2026-001"
    assert [c["transaction"]["case_id"] for c in received(sandbox, "case_opened")] == [
        "XK-2026-001"]


def entry_of(sandbox: SandboxServer, subject_id: str) -> str:
    """The id of the subject's (one) entry, from the admin view."""
    answer = admin(sandbox, "GET", f"/v1/subjects/{subject_id}")
    (entry,) = answer["entries"]
    return str(entry["entry_id"])


def test_an_objection_rejected_mid_case_is_rescreened(
        make_checker: MakeChecker, sandbox: SandboxServer) -> None:
    seen: list[tuple[Decision, Decision]] = []
    checker = make_checker(on_rescreen=lambda a, b: seen.append((a, b)))
    org = SHOWCASE["objection_tax_org"]
    d = checker.check(org, tx("XK-2026-002"))
    assert d.outcome is Outcome.ALLOW  # the objection suspends the measure
    assert checker.sync()
    admin(sandbox, "POST", f"/v1/admin/entries/{entry_of(sandbox, org)}/status",
          json={"status": "active", "reason": "objection_rejected"})
    assert checker.sync()
    assert [(a.outcome, b.outcome) for a, b in seen] == [(Outcome.ALLOW, Outcome.REVIEW)]
    checker.close()
    (r,) = received(sandbox, "rescreen")
    assert (r["previous_outcome"], r["outcome"], r["decision_id"]) == (
        "allow", "review", d.decision_id)


def test_a_closed_case_is_not_rescreened(make_checker: MakeChecker,
                                         sandbox: SandboxServer) -> None:
    seen: list[Any] = []
    checker = make_checker(on_rescreen=lambda a, b: seen.append(b))
    org = SHOWCASE["a_grade_org"]
    checker.check(org, tx("XK-2026-003"))
    assert checker.sync()
    assert checker.close_case("XK-2026-003") == 1
    list_subject(sandbox, "after-close", org)
    assert checker.sync()
    assert seen == [] and checker.status().watched == 0


def test_a_deny_resting_on_an_entry_removed_as_wrong_is_surfaced_with_lift(
        make_checker: MakeChecker, sandbox: SandboxServer) -> None:
    seen: list[tuple[Decision, Decision]] = []
    checker = make_checker(on_rescreen=lambda a, b: seen.append((a, b)))
    org = SHOWCASE["court_defaulter_org"]
    d = checker.check(org, tx("CG-2026-004", "procurement"))
    assert d.outcome is Outcome.DENY
    entry_id = entry_of(sandbox, org)
    assert entry_id in {m.entry_id for m in d.measures}
    assert checker.sync()
    assert checker.report(d.decision_id, result="rejected")  # the case is over: kept
    assert checker.status().watched == 0
    admin(sandbox, "POST", f"/v1/admin/entries/{entry_id}/status",
          json={"status": "removed", "reason": "objection_upheld_wrong"})
    assert checker.sync()
    assert len(seen) == 1
    original, new = seen[0]
    assert original.decision_id == d.decision_id and original.outcome is Outcome.DENY
    assert entry_id in {m.entry_id for m in original.measures}
    assert new.outcome is Outcome.ALLOW and not new.matches
    assert checker.sync() and len(seen) == 1
    checker.close()
    (r,) = received(sandbox, "rescreen")
    assert r["lift"] is True and r["lifted_entries"] == [entry_id]
    assert (r["decision_id"], r["previous_outcome"], r["outcome"]) == (
        d.decision_id, "deny", "allow")


def test_a_repair_is_not_a_lift(make_checker: MakeChecker, sandbox: SandboxServer) -> None:
    seen: list[Any] = []
    checker = make_checker(on_rescreen=lambda a, b: seen.append(b))
    org = SHOWCASE["court_defaulter_org"]
    assert checker.check(org, tx("CG-2026-005", "procurement")).outcome is Outcome.DENY
    assert checker.sync()
    admin(sandbox, "POST", f"/v1/admin/entries/{entry_of(sandbox, org)}/status",
          json={"status": "repaired", "reason": "repaired"})
    assert checker.sync()
    assert seen == []  # less severe, and no measure to lift
    checker.close()
    assert received(sandbox, "rescreen") == []


def test_a_failing_callback_does_not_stop_the_record_nor_later_syncs(
        make_checker: MakeChecker, sandbox: SandboxServer,
        caplog: pytest.LogCaptureFixture) -> None:
    def boom(original: Decision, new: Decision) -> None:
        raise RuntimeError("host bug")

    checker = make_checker(on_rescreen=boom)
    org = SHOWCASE["a_grade_org"]
    checker.check(org, tx("XK-2026-006"))
    assert checker.sync()
    list_subject(sandbox, "mid-case-6", org)
    with caplog.at_level(logging.WARNING, "credit_check.lifecycle"):
        assert checker.sync()
    assert "on_rescreen callback failed" in caplog.text
    assert "re-screen: case XK-2026-006 (subject " + org + ") is now review" in caplog.text
    assert checker.sync()
    checker.close()
    assert len(received(sandbox, "rescreen")) == 1


def test_a_person_listed_mid_case_is_logged_masked(
        make_checker: MakeChecker, sandbox: SandboxServer,
        caplog: pytest.LogCaptureFixture) -> None:
    person = make_id_number(random.Random(7))
    checker = make_checker()
    d = checker.check(Subject.person(person, "李四"), tx("XK-2026-007"))
    assert d.outcome is Outcome.ALLOW
    assert checker.sync()
    list_subject(sandbox, "person-mid-case", person, subject_kind="person",
                 list_code="court.judgment_defaulter")
    with caplog.at_level(logging.WARNING, "credit_check.lifecycle"):
        assert checker.sync()
    assert f"case XK-2026-007 (subject {mask_id(person)}) is now review" in caplog.text
    assert person not in caplog.text and "李四" not in caplog.text


def test_rescreens_are_counted_in_the_metrics(make_checker: MakeChecker,
                                              sandbox: SandboxServer) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from credit_check import enable_metrics

    checker = make_checker()
    registry = CollectorRegistry()
    enable_metrics(checker, registry)
    checker.check(SHOWCASE["a_grade_org"], tx("XK-2026-008"))
    checker.check(SHOWCASE["red_and_black_org"], tx("XK-2026-009"))
    assert checker.sync()        # decided on the data held: nothing to decide again
    list_subject(sandbox, "metrics-mid-case", SHOWCASE["a_grade_org"])
    list_subject(sandbox, "metrics-watch", SHOWCASE["red_and_black_org"],
                 list_code="market.abnormal_operation", kind="watch")
    assert checker.sync()        # both touched: one more severe, one still review
    counted = {line.split(" ")[0]: float(line.split(" ")[1])
               for line in generate_latest(registry).decode().splitlines()
               if line.startswith("credit_check_rescreens_total")}
    assert counted == {'credit_check_rescreens_total{changed="true"}': 1.0,
                       'credit_check_rescreens_total{changed="false"}': 1.0}
