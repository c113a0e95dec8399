"""The Checker end to end against the real sandbox over loopback: every rulebook case on
the demo data, caching against the clock, legal representatives, consortium bids, an
outage with degraded decisions and a post-check, and a restart with the service down."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from _sandbox_support import Clock, MakeChecker, admin

from credit_check import Decision, Outcome, Subject, Transaction
from credit_check._models import CST

_demo = pytest.importorskip("credit_check._server._demo")
SHOWCASE = _demo.SHOWCASE
SandboxServer = pytest.importorskip("credit_check._server").SandboxServer


def sid(name: str) -> str:
    """The identifier of a showcase subject."""
    value: Any = SHOWCASE[name]
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("id") or value.get("uscc") or value.get("id_number"))
    return str(getattr(value, "id"))


def tx(scenario: str, case: str = "IT-1") -> Transaction:
    return Transaction(scenario=scenario, case_id=case)


@pytest.mark.parametrize(
    ("name", "scenario", "outcome"),
    [
        ("court_defaulter_org", "procurement", Outcome.DENY),
        ("court_defaulter_org", "licensing", Outcome.REVIEW),
        ("tax_violator_org", "bidding", Outcome.DENY),
        ("watch_org", "licensing", Outcome.RESTRICT),
        ("watch_org", "procurement", Outcome.ALLOW),
        ("a_grade_org", "licensing", Outcome.GREEN_CHANNEL),
        ("red_and_black_org", "licensing", Outcome.REVIEW),
        ("objection_tax_org", "procurement", Outcome.ALLOW),
        ("objection_court_org", "procurement", Outcome.DENY),
        ("repaired_org", "procurement", Outcome.ALLOW),
        ("expired_org", "procurement", Outcome.ALLOW),
        ("lapsed_org", "procurement", Outcome.ALLOW),
        ("clean_3y_org", "licensing", Outcome.GREEN_CHANNEL),
        ("clean_recent_org", "licensing", Outcome.ALLOW),
        ("unknown_org", "procurement", Outcome.ALLOW),
        ("black_person", "subsidy", Outcome.DENY),
    ],
)
def test_rulebook_cases_end_to_end(
    make_checker: MakeChecker, name: str, scenario: str, outcome: Outcome
) -> None:
    checker = make_checker(feedback=False)
    d = checker.check(sid(name), tx(scenario))
    assert d.outcome is outcome, d.reasons
    assert not d.degraded and d.catalog_version and d.data_version


def test_suspended_objection_is_explained_and_blocks_the_green_channel(
    make_checker: MakeChecker,
) -> None:
    checker = make_checker(feedback=False)
    d = checker.check(sid("objection_tax_org"), tx("procurement"))
    assert d.matches and not d.measures
    assert any("异议" in r for r in d.reasons)
    assert checker.check(sid("objection_tax_org"), tx("licensing")).outcome is not \
        Outcome.GREEN_CHANNEL


def test_repaired_entry_is_not_shown(make_checker: MakeChecker) -> None:
    d = make_checker(feedback=False).check(sid("repaired_org"), tx("procurement"))
    assert not d.matches and not d.measures


def test_person_ids_are_masked_in_reasons(make_checker: MakeChecker) -> None:
    person = sid("black_person")
    d = make_checker(feedback=False).check(person, tx("subsidy"))
    assert person not in " ".join(d.reasons) and person not in repr(d)


def test_legal_representative_of_a_court_defaulter_is_denied_market_access(
    make_checker: MakeChecker,
) -> None:
    checker = make_checker(feedback=False)
    rep = sid("court_defaulter_rep")
    org = Subject.organization(sid("unknown_org"), legal_representative=rep)
    d = checker.check(org, tx("market_access"))
    assert d.outcome is Outcome.DENY
    assert any(m.target.value == "legal_representative" for m in d.measures)
    # Without the representative the same organisation is clean.
    assert checker.check(sid("unknown_org"), tx("market_access")).outcome is Outcome.ALLOW


def test_consortium_bid_takes_the_most_severe_member(make_checker: MakeChecker) -> None:
    checker = make_checker()
    members = [sid("a_grade_org"), sid("court_defaulter_org"), sid("unknown_org")]
    group = checker.check_many(members, tx("bidding", "ZB-2026-7"))
    assert group.outcome is Outcome.DENY and len(group) == 3
    assert [d.subject.id for d in group] == members
    audit = checker.checks_for_case("ZB-2026-7")
    assert len(audit) == 3


def test_entry_expiring_while_cached_stops_applying(
    make_checker: MakeChecker, sandbox: SandboxServer, clock: Clock
) -> None:
    until = (dt.datetime.now(CST) + dt.timedelta(days=1)).replace(microsecond=0)
    org = "91330100MA2CCCCC48"
    admin(sandbox, "POST", "/v1/admin/entries", json={"entries": [{
        "entry_id": "it-expiring", "list_code": "court.judgment_defaulter",
        "list_kind": "black", "subject_id": org, "subject_kind": "organization",
        "name": "将到期示例公司", "issuing_department": "某市中级人民法院",
        "basis_document": "（2026）执9号", "reason": "", "listed_on": "2026-01-01",
        "effective_from": "2026-01-01", "effective_until": until.isoformat(),
        "status": "active", "legal_representative_id": None,
    }]})
    checker = make_checker(feedback=False)
    clock.set(until - dt.timedelta(seconds=10))
    assert checker.check(org, tx("procurement")).outcome is Outcome.DENY
    clock.set(until + dt.timedelta(seconds=10))  # well inside the listed TTL
    d = checker.check(org, tx("procurement"))
    assert d.outcome is Outcome.ALLOW and not d.matches and not d.degraded


def test_outage_degrades_then_the_post_check_reports_the_hit(
    make_checker: MakeChecker, sandbox: SandboxServer, tmp_path: Path
) -> None:
    seen: list[tuple[Decision, Decision]] = []
    checker = make_checker(on_post_check=lambda a, b: seen.append((a, b)),
                           fallback="review,procurement=allow")
    port = int(sandbox.base_url.rsplit(":", 1)[1].split("/")[0])
    sandbox.stop()
    degraded = checker.check(sid("court_defaulter_org"), tx("procurement", "CG-OUT"))
    assert degraded.degraded and degraded.outcome is Outcome.ALLOW
    clean = checker.check(sid("unknown_org"), tx("procurement", "CG-OUT"))
    assert not clean.degraded  # decided from the snapshot, service or not
    assert checker.status().post_check_pending == 1
    assert not checker.sync() and checker.status().last_error

    revived = SandboxServer(db_path=tmp_path / "sandbox.sqlite3", demo=True, port=port)
    revived.start()
    try:
        assert checker.sync()
        assert checker.status().post_check_pending == 0
        [(original, new)] = seen
        assert original.decision_id == degraded.decision_id
        assert new.outcome is Outcome.DENY and not new.degraded
        assert checker._outbox is not None and checker._outbox.sender is not None
        assert checker._outbox.sender.flush(10)
        records = admin(revived, "GET", "/v1/admin/feedback")["records"]
        post = [r for r in records if r["kind"] == "post_check"]
        assert post and post[0]["outcome"] == "deny"
    finally:
        checker.close()
        revived.stop()


def test_restart_serves_the_persisted_snapshot_with_the_service_down(
    make_checker: MakeChecker, sandbox: SandboxServer
) -> None:
    first = make_checker(feedback=False)
    version = first.status().snapshot_version
    first.close()
    sandbox.stop()
    restarted = make_checker(feedback=False, start=True, sync=False)
    assert restarted.ready and restarted.status().snapshot_version == version
    assert restarted.check(sid("unknown_org"), tx("procurement")).outcome is Outcome.ALLOW
    d = restarted.check(sid("court_defaulter_org"), tx("procurement"))
    assert d.degraded and d.outcome is Outcome.REVIEW


def test_forked_worker_restarts_its_threads_and_checks(
    make_checker: MakeChecker,
) -> None:
    checker = make_checker(start=True, feedback=True)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            local = checker.check(sid("unknown_org"), tx("procurement", "FORK"))
            online = checker.check(sid("court_defaulter_org"), tx("procurement", "FORK"))
            synced = checker.sync()
            code = 0 if (local.outcome is Outcome.ALLOW and online.outcome is Outcome.DENY
                         and not online.degraded and synced) else 3
        finally:
            os.write(write_end, bytes([code]))
            os._exit(0)
    os.close(write_end)
    result = os.read(read_end, 1)
    os.close(read_end)
    os.waitpid(pid, 0)
    assert result == b"\x00"
    assert checker.check(sid("unknown_org"), tx("procurement")).outcome is Outcome.ALLOW
    assert threading.active_count() >= 1
