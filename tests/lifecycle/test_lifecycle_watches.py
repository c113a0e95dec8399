"""Watched cases and grants (DESIGN rule 14, §9.8): derived from the decision records,
bounded, encrypted at rest, shared by the data directory — or the outbox's PostgreSQL."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import pytest
from _lifecycle_support import MakeChecker, list_subject, received

from credit_check import (
    Checker,
    Decision,
    InvalidArgument,
    Outcome,
    Subject,
    Transaction,
    UnknownDecision,
)
from credit_check._lifecycle._db import LIFECYCLE_FILE
from credit_check._models import CST
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE


def tx(case_id: str | None, scenario: str = "licensing") -> Transaction:
    return Transaction(scenario=scenario, case_id=case_id)


def test_a_watch_costs_check_nothing_it_comes_from_the_decision_record(
        make_checker: MakeChecker) -> None:
    checker = make_checker()
    checker.check(SHOWCASE["a_grade_org"], tx("XK-1"))
    checker.check(SHOWCASE["unknown_org"], tx(None))       # no case, no measure: not watched
    assert checker.status().watched == 0                   # nothing written by check()
    assert checker.sync()
    assert checker.status().watched == 1


def test_a_final_result_ends_the_watch_and_a_grant_is_watched_until_its_date(
        make_checker: MakeChecker, sandbox: SandboxServer) -> None:
    seen: list[tuple[Decision, Decision]] = []
    checker = make_checker(on_rescreen=lambda a, b: seen.append((a, b)))
    org = SHOWCASE["a_grade_org"]
    refused = checker.check(SHOWCASE["unknown_org"], tx("XK-2"))
    honour = checker.check(org, tx("PY-2026-1", "honor"))
    assert honour.outcome is Outcome.ALLOW
    checker.report(refused.decision_id, result="rejected")
    checker.report(honour.decision_id, result="granted",
                   watch_until=dt.date.today() + dt.timedelta(days=365))
    assert checker.sync() and checker.status().watched == 1
    assert checker.close_case("PY-2026-1") == 0            # a grant outlives its case
    list_subject(sandbox, "after-grant", org)
    assert checker.sync()
    assert [(a.decision_id, b.outcome) for a, b in seen] == [(honour.decision_id,
                                                              Outcome.DENY)]
    with pytest.raises(InvalidArgument, match="in the past"):
        checker.report(honour.decision_id, result="granted",
                       watch_until=dt.datetime(2020, 1, 1, tzinfo=CST))
    with pytest.raises(InvalidArgument, match="a date or datetime"):
        checker.report(honour.decision_id, result="granted", watch_until="2030")  # type: ignore[arg-type]


def test_the_watch_list_is_bounded_and_refuses_loudly(
        make_checker: MakeChecker, caplog: pytest.LogCaptureFixture) -> None:
    checker = make_checker(watch_limit=2)
    for i in range(3):
        checker.check(SHOWCASE["a_grade_org"], tx(f"XK-B{i}"))
    with caplog.at_level(logging.ERROR, "credit_check.lifecycle"):
        assert checker.sync()
    status = checker.status()
    assert (status.watched, status.watch_refused) == (2, 1)
    assert "the watch list is full" in caplog.text and "1 decisions are not watched" in caplog.text


def test_watches_are_encrypted_at_rest(make_checker: MakeChecker, options: dict[str, Any]
                                       ) -> None:
    checker = make_checker()
    person = SHOWCASE["black_person"]
    d = checker.check(Subject.person(person, "王小明"), tx("BZ-1", "subsidy"))
    assert d.outcome is Outcome.DENY and d.subject.name == "王小明"
    assert checker.sync() and checker.status().watched == 1
    checker.close()
    files = list(Path(options["data_dir"]).glob(LIFECYCLE_FILE + "*"))
    data = b"".join(p.read_bytes() for p in files)
    assert data and person.encode() not in data and d.subject.name.encode() not in data
    for m in d.matches:
        assert m.entry_id.encode() not in data                 # the entry index is keyed


def test_calls_on_a_checker_without_feedback_say_why(make_checker: MakeChecker) -> None:
    checker = make_checker(feedback=False)
    with pytest.raises(UnknownDecision, match="feedback is off"):
        checker.close_case("XK-9")
    with pytest.raises(InvalidArgument, match="case"):
        make_checker().close_case(" ")


def test_watches_and_rescreens_in_postgresql(
        make_checker: MakeChecker, sandbox: SandboxServer, pg_url: str) -> None:
    seen: list[tuple[Decision, Decision]] = []
    first = make_checker(outbox_url=pg_url)
    d = first.check(SHOWCASE["a_grade_org"], tx("XK-PG-1"))
    # Another host (its own data directory) follows the cases in the shared database.
    other = make_checker(outbox_url=pg_url, data_dir=Path(str(first.settings.data_dir)) / "b",
                         on_rescreen=lambda a, b: seen.append((a, b)))
    c = first.commit(d.decision_id, items=["设备清单"], working_days=5)
    first.close()
    assert other.sync() and other.status().watched == 1
    assert [x.commitment_id for x in other.commitments(SHOWCASE["a_grade_org"])] == [
        c.commitment_id]
    list_subject(sandbox, "pg-mid-case", SHOWCASE["a_grade_org"])
    assert other.sync()
    assert [(a.decision_id, b.outcome) for a, b in seen] == [(d.decision_id, Outcome.REVIEW)]
    other.close()
    assert [r["decision_id"] for r in received(sandbox, "rescreen")] == [d.decision_id]
    assert Checker  # the public name is the one configured here
