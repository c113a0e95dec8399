"""The Checker against a scripted list service (``responses``): local decisions from the
snapshot, online confirmation of prefix hits, caching, legal representatives, groups,
rule 9's fallback and post-check, feedback and configuration errors."""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from _fake_service import (
    BASE,
    CLEAN_ORG,
    ORG,
    OTHER_ORG,
    PERSON,
    THIRD_ORG,
    FakeService,
    entry,
)

from credit_check import (
    Checker,
    ConfigurationError,
    Decision,
    DecisionGroup,
    InvalidSubjectId,
    OutboxError,
    Outcome,
    Subject,
    Transaction,
    UnknownDecision,
)
from credit_check._crypto import Signer, id_prefix
from credit_check._models import CST
from credit_check._receipts import SnapshotReceipt
from credit_check._rules import decide

PROCUREMENT = Transaction(scenario="procurement", case_id="CG-1")
LICENSING = Transaction(scenario="licensing", case_id="XK-1")
MARKET = Transaction(scenario="market_access", case_id="SC-1")
KEY = base64.b64encode(b"k" * 32).decode()


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 3, 1, 10, 0, tzinfo=CST)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture
def service() -> Iterator[FakeService]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeService(rsps)


@pytest.fixture
def clock() -> Clock:
    return Clock()


MakeChecker = Callable[..., Checker]


@pytest.fixture
def make_checker(tmp_path: Path, clock: Clock, service: FakeService) -> Iterator[MakeChecker]:
    made: list[Checker] = []

    def make(sync: bool = True, **kw: Any) -> Checker:
        options: dict[str, Any] = dict(base_url=BASE, api_key="dept-key", department="市发改委",
                                       data_dir=tmp_path / "data", encryption_key=KEY,
                                       clock=clock, start=False)
        options.update(kw)
        checker = Checker(**options)
        made.append(checker)
        if sync:
            assert checker.sync()
        return checker

    yield make
    service.down = False  # let close() deliver the outbox at once
    service.modes.clear()
    for c in made:
        c.close()


def test_not_listed_subject_is_decided_locally_as_the_rulebook_would(
    service: FakeService, make_checker: MakeChecker, clock: Clock
) -> None:
    service.add(entry(ORG))
    checker = make_checker()
    d = checker.check(CLEAN_ORG, PROCUREMENT)
    assert service.calls.get("lookup", 0) == 0
    assert d.outcome is Outcome.ALLOW and not d.degraded
    assert d.catalog_version == "2026.1" and d.data_version == str(service.version)
    expected = decide(subject=d.subject, transaction=PROCUREMENT,
                      catalog=checker._syncer.catalog.catalog,  # type: ignore[union-attr]
                      now=clock.now, decision_id=d.decision_id, data_version=d.data_version)
    assert d.model_dump(exclude={"receipt"}) == expected.model_dump(exclude={"receipt"})
    assert Decision.model_validate(d.model_dump()) == expected.model_copy(
        update={"receipt": d.receipt})
    # Its receipt: the signed header of the snapshot it was decided on, and the prefix.
    assert isinstance(d.receipt, SnapshotReceipt)
    assert d.receipt.header.version == service.version
    assert d.receipt.prefix == f"{id_prefix(CLEAN_ORG):08x}"


def test_listed_subject_is_confirmed_online_and_cached(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG))
    checker = make_checker()
    d = checker.check(Subject.organization(ORG), PROCUREMENT)
    assert d.outcome is Outcome.DENY and d.measures[0].code == "P-001"
    assert d.remedy and d.matches[0].subject_id == ORG
    checker.check(ORG, PROCUREMENT)
    assert service.calls["lookup"] == 1


def test_a_cached_listed_subject_checked_again_gets_the_rulebooks_decision_afresh(
    service: FakeService, make_checker: MakeChecker, clock: Clock
) -> None:
    # Repeated checks reuse the rulebook's work on the same cached answer; what they return
    # must be exactly what the rulebook gives for the new case and moment.
    service.add(entry(ORG))
    checker = make_checker()
    first = checker.check(ORG, PROCUREMENT)
    clock.advance(5)
    case = Transaction(scenario="procurement", case_id="CG-2", operator="窗口2")
    again = checker.check(Subject.organization(ORG, name="某某建设有限公司"), case)
    assert service.calls["lookup"] == 1
    assert again.decision_id != first.decision_id and again.decided_at == clock.now
    expected = decide(subject=again.subject, transaction=case,
                      catalog=checker._syncer.catalog.catalog,  # type: ignore[union-attr]
                      now=clock.now, decision_id=again.decision_id, entries=first.matches,
                      data_version=first.data_version)
    assert again.model_dump() == expected.model_dump()
    assert again.measures is not first.measures and again.reasons is not first.reasons


@pytest.mark.parametrize("mode", [("snapshot_sig", "badsig"), ("catalog_sig", "badsig"),
                                  ("delta", "checksum")])
def test_tampered_data_is_refused_visibly_and_the_last_good_copy_keeps_deciding(
    service: FakeService, make_checker: MakeChecker, caplog: pytest.LogCaptureFixture,
    mode: tuple[str, str],
) -> None:
    service.add(entry(ORG))
    checker = make_checker()
    before = checker.status()
    service.catalog = dict(service.catalog, version="2026.9")
    service.add(entry(OTHER_ORG))
    service.modes[mode[0]] = mode[1]
    with caplog.at_level(logging.INFO, logger="credit_check"):
        ok = checker.sync()
    after = checker.status()
    if mode[0] == "delta":
        # A delta that does not add up is dropped for a full, verified resync.
        assert ok and after.snapshot_version == service.version
        assert "resyncing in full" in caplog.text
    else:
        assert not ok
        assert after.last_error and "signature" in after.last_error
        assert "last good data keeps serving" in caplog.text
        if mode[0] == "snapshot_sig":
            assert after.snapshot_version == before.snapshot_version
            assert checker.check(OTHER_ORG, PROCUREMENT).outcome is Outcome.ALLOW
        else:
            assert after.catalog_version == before.catalog_version == "2026.1"
    assert checker.check(ORG, PROCUREMENT).outcome is Outcome.DENY


def test_prefix_collision_is_cached_as_not_listed(
    service: FakeService, make_checker: MakeChecker, clock: Clock
) -> None:
    from credit_check._crypto import id_prefix

    service.extra_prefixes.add(id_prefix(CLEAN_ORG))
    service.publish()
    checker = make_checker()
    assert checker.check(CLEAN_ORG, PROCUREMENT).outcome is Outcome.ALLOW
    clock.advance(120)  # past the listed TTL, inside the not-listed one
    assert checker.check(CLEAN_ORG, PROCUREMENT).outcome is Outcome.ALLOW
    assert service.calls["lookup"] == 1


def test_invalid_identifier_raises_before_any_io(
    service: FakeService, make_checker: MakeChecker
) -> None:
    checker = make_checker()
    before = dict(service.calls)
    with pytest.raises(InvalidSubjectId, match="check character"):
        checker.check("91350100M000100Y44", PROCUREMENT)
    with pytest.raises(InvalidSubjectId):
        checker.check_many([CLEAN_ORG, "123"], PROCUREMENT)
    assert service.calls == before


@pytest.mark.parametrize("failure", [500, 503, 429, "timeout", "garbage", "schema"])
def test_lookup_failure_gives_the_degraded_fallback_and_queues_a_post_check(
    service: FakeService, make_checker: MakeChecker, failure: Any
) -> None:
    service.add(entry(ORG))
    checker = make_checker(fallback="review,procurement=deny")
    service.modes["lookup"] = failure
    d = checker.check(ORG, PROCUREMENT)
    assert d.degraded and d.outcome is Outcome.DENY
    assert checker.check(ORG, LICENSING).outcome is Outcome.REVIEW
    status = checker.status()
    assert status.post_check_pending == 2
    assert status.last_error and "lookup" in status.last_error


def test_stale_answer_serves_while_the_service_fails(
    service: FakeService, make_checker: MakeChecker, clock: Clock
) -> None:
    service.add(entry(ORG))
    checker = make_checker()
    checker.check(ORG, PROCUREMENT)
    clock.advance(600)
    service.down = True
    d = checker.check(ORG, PROCUREMENT)
    assert d.outcome is Outcome.DENY and d.degraded
    assert checker.status().post_check_pending == 1


def test_stale_answer_is_not_used_beyond_max_stale(
    service: FakeService, make_checker: MakeChecker, clock: Clock
) -> None:
    service.add(entry(ORG))
    checker = make_checker(max_stale=100)
    checker.check(ORG, PROCUREMENT)
    clock.advance(200)
    service.down = True
    d = checker.check(ORG, PROCUREMENT)
    assert d.degraded and d.outcome is Outcome.REVIEW and not d.matches


def test_entry_expiring_while_cached_stops_applying(
    service: FakeService, make_checker: MakeChecker, clock: Clock
) -> None:
    until = (clock.now + dt.timedelta(seconds=30)).isoformat()
    service.add(entry(ORG, effective_until=until))
    checker = make_checker()
    assert checker.check(ORG, PROCUREMENT).outcome is Outcome.DENY
    clock.advance(31)
    d = checker.check(ORG, PROCUREMENT)
    assert d.outcome is Outcome.ALLOW and not d.matches
    assert service.calls["lookup"] == 1


def test_clean_record_green_channel_needs_a_lookup_even_when_not_listed(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.clean_since[CLEAN_ORG] = "2020-01-01"
    service.clean_since[OTHER_ORG] = "2025-06-01"
    checker = make_checker()
    d = checker.check(CLEAN_ORG, LICENSING)
    assert d.outcome is Outcome.GREEN_CHANNEL and d.measures[0].code == "R-001"
    assert checker.check(OTHER_ORG, LICENSING).outcome is Outcome.ALLOW
    assert service.calls["lookup"] == 2
    checker.check(CLEAN_ORG, LICENSING)
    assert service.calls["lookup"] == 2  # cached


def test_clean_record_lookup_failing_still_allows_a_not_listed_subject(
    service: FakeService, make_checker: MakeChecker
) -> None:
    checker = make_checker()
    service.down = True
    d = checker.check(CLEAN_ORG, LICENSING)
    assert d.outcome is Outcome.ALLOW and not d.degraded


def test_caller_given_legal_representative_is_checked(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(PERSON, subject_kind="person"))
    checker = make_checker()
    org = Subject.organization(CLEAN_ORG, legal_representative=PERSON)
    d = checker.check(org, MARKET)
    assert d.outcome is Outcome.DENY and d.measures[0].target.value == "legal_representative"
    assert PERSON not in " ".join(d.reasons)
    # The representative matters only where the catalogue has a measure for one.
    assert checker.check(org, PROCUREMENT).outcome is Outcome.ALLOW


def test_service_named_representative_of_another_defaulter_is_checked(
    service: FakeService, make_checker: MakeChecker
) -> None:
    # OTHER_ORG is a court defaulter represented by PERSON; ORG (on the watch list, so
    # looked up) names PERSON as its representative.
    service.add(entry(OTHER_ORG, rep=PERSON),
                entry(ORG, "market.abnormal_operation", kind="watch"))
    service.reps[ORG] = PERSON
    checker = make_checker()
    d = checker.check(ORG, MARKET)
    assert d.outcome is Outcome.DENY
    assert d.subject.legal_representative is not None
    assert d.subject.legal_representative.id == PERSON
    assert any(e.subject_id == OTHER_ORG for e in d.matches)


def test_check_many_uses_one_batch_round_trip_and_the_most_severe_outcome(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG), entry(OTHER_ORG, "market.abnormal_operation", kind="watch"))
    checker = make_checker()
    group = checker.check_many([ORG, Subject.organization(OTHER_ORG), THIRD_ORG], PROCUREMENT)
    assert [d.subject.id for d in group] == [ORG, OTHER_ORG, THIRD_ORG]
    assert group.outcome is Outcome.DENY and len(group) == 3
    assert [d.outcome for d in group.decisions] == [Outcome.DENY, Outcome.ALLOW, Outcome.ALLOW]
    assert service.calls.get("batch") == 1 and service.calls.get("lookup", 0) == 0
    assert not group.degraded


def test_check_many_falls_back_per_member_when_the_batch_fails(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG), entry(OTHER_ORG))
    checker = make_checker()
    service.modes["batch"] = 500
    group = checker.check_many([ORG, OTHER_ORG, THIRD_ORG], PROCUREMENT)
    assert [d.degraded for d in group] == [True, True, False]
    assert group.outcome is Outcome.REVIEW


def test_check_local_never_calls_the_network(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG))
    checker = make_checker()
    assert checker.check_local(ORG, PROCUREMENT) is None
    local = checker.check_local(THIRD_ORG, PROCUREMENT)
    assert local is not None and local.outcome is Outcome.ALLOW
    assert service.calls.get("lookup", 0) == 0
    checker.check(ORG, PROCUREMENT)
    cached = checker.check_local(ORG, PROCUREMENT)
    assert cached is not None and cached.outcome is Outcome.DENY
    assert service.calls["lookup"] == 1


def test_a_decision_whose_record_cannot_be_written_is_raised_with_the_decision(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG))
    checker = make_checker()
    checker.check(ORG, PROCUREMENT)  # cached: the next check decides without the network
    assert checker._outbox is not None
    checker._outbox.journal.close()  # every write now fails, as on a full disk
    for call in (checker.check, checker.check_local):
        with pytest.raises(OutboxError, match="could not be recorded") as caught:
            call(ORG, PROCUREMENT)
        assert isinstance(caught.value.decision, Decision)
        assert caught.value.decision.outcome is Outcome.DENY  # made, and to be enforced
    with pytest.raises(OutboxError) as group:
        checker.check_many([ORG, THIRD_ORG], PROCUREMENT)
    assert isinstance(group.value.decision, DecisionGroup)
    assert group.value.decision.outcome is Outcome.DENY


def test_without_a_catalogue_every_check_is_degraded(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.down = True
    checker = make_checker(sync=False)
    assert not checker.ready and not checker.wait_ready(0.01)
    d = checker.check(CLEAN_ORG, PROCUREMENT)
    assert d.degraded and d.outcome is Outcome.REVIEW and d.catalog_version is None
    # Nothing was tried yet (no sync, and no lookup without a catalogue): no error, but
    # the status names what degrades the decisions.
    status = checker.status()
    assert status.last_error is None
    assert status.degraded_causes[0].startswith("no_catalogue:")
    assert not checker.sync()
    assert checker.status().last_error


def test_post_check_reports_a_hit_after_the_outage(
    service: FakeService, make_checker: MakeChecker
) -> None:
    seen: list[tuple[Decision, Decision]] = []
    service.add(entry(ORG))
    checker = make_checker(on_post_check=lambda a, b: seen.append((a, b)))
    service.down = True
    degraded = checker.check(ORG, PROCUREMENT)
    clean = checker.check(THIRD_ORG, PROCUREMENT)
    assert degraded.degraded and not clean.degraded
    service.down = False
    assert checker.sync()
    assert checker.status().post_check_pending == 0
    assert len(seen) == 1
    original, new = seen[0]
    assert original.decision_id == degraded.decision_id
    assert new.outcome is Outcome.DENY and not new.degraded


def test_post_check_waits_while_the_service_is_still_failing(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG))
    checker = make_checker()
    service.modes["lookup"] = 503
    checker.check(ORG, PROCUREMENT)
    assert checker.sync()  # the snapshot syncs; lookups still fail
    assert checker.status().post_check_pending == 1


def test_feedback_records_report_and_case_audit(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG))
    checker = make_checker()
    d = checker.check(ORG, PROCUREMENT)
    record_id = checker.report(d.decision_id, result="rejected", note="bid refused")
    assert record_id
    kinds = [str(r.kind) for r in checker.checks_for_case("CG-1")]
    assert kinds == ["decision", "outcome"]
    with pytest.raises(UnknownDecision):
        checker.report("no-such-decision", result="approved")


def test_feedback_off_means_no_outbox(service: FakeService, make_checker: MakeChecker) -> None:
    checker = make_checker(feedback=False)
    d = checker.check(CLEAN_ORG, PROCUREMENT)
    assert checker.status().outbox_pending is None
    assert checker.checks_for_case("CG-1") == []
    with pytest.raises(UnknownDecision, match="feedback"):
        checker.report(d.decision_id, result="approved")


@pytest.mark.parametrize(
    ("override", "name"),
    [({"base_url": None}, "BASE_URL"), ({"api_key": None}, "API_KEY"),
     ({"department": None}, "DEPARTMENT"), ({"fallback": "sometimes"}, "FALLBACK"),
     ({"encryption_key": "short"}, "ENCRYPTION_KEY"),
     ({"service_public_key": "nope"}, "SERVICE_PUBLIC_KEY"),
     ({"base_url": "list.test"}, "BASE_URL"), ({"listed_ttl": -1}, "LISTED_TTL")],
)
def test_misconfiguration_fails_at_construction_naming_the_setting(
    tmp_path: Path, override: dict[str, Any], name: str
) -> None:
    options: dict[str, Any] = dict(base_url=BASE, api_key="k", department="d",
                                   data_dir=tmp_path, start=False)
    options.update(override)
    with pytest.raises(ConfigurationError, match=f"CREDIT_CHECK_{name}"):
        Checker(**options)


def test_from_env_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CREDIT_CHECK_BASE_URL", BASE)
    monkeypatch.setenv("CREDIT_CHECK_API_KEY", "k")
    monkeypatch.setenv("CREDIT_CHECK_DEPARTMENT", "env-dept")
    monkeypatch.setenv("CREDIT_CHECK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CREDIT_CHECK_FALLBACK", "deny")
    monkeypatch.setenv("CREDIT_CHECK_FEEDBACK", "false")
    with Checker.from_env(start=False, encryption_key=KEY) as checker:
        assert checker.settings.department == "env-dept"
        assert checker.status().outbox_pending is None
        d = checker.check(CLEAN_ORG, PROCUREMENT)  # no catalogue yet: the fallback
        assert d.outcome is Outcome.DENY and d.degraded
    monkeypatch.delenv("CREDIT_CHECK_API_KEY")
    with pytest.raises(ConfigurationError, match="CREDIT_CHECK_API_KEY"):
        Checker.from_env(start=False)


def test_pinned_key_rejects_data_signed_by_another_key(
    service: FakeService, make_checker: MakeChecker
) -> None:
    checker = make_checker(sync=False, service_public_key=Signer.generate().public_key)
    assert not checker.sync()
    status = checker.status()
    assert not status.ready and status.last_error and "signature" in status.last_error


def run_in_fork(child: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Run ``child`` in a forked process; its verdict, or False if it hangs or fails."""
    import select
    import signal

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        ok = False
        try:
            ok = child()
        finally:
            os.write(write_end, b"1" if ok else b"0")
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], timeout)
        verdict = os.read(read_end, 1) if ready else b""
    finally:
        os.close(read_end)
        if not verdict:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return verdict == b"1"


def test_fork_child_restarts_its_threads_and_keeps_the_snapshot(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG))
    checker = make_checker(sync_interval=3600, start=True, feedback=False)

    def child() -> bool:
        d = checker.check(THIRD_ORG, PROCUREMENT)
        online = checker.check(ORG, PROCUREMENT)
        return (d.outcome is Outcome.ALLOW and not d.degraded and online.outcome is
                Outcome.DENY and checker._syncer.thread_alive)

    assert run_in_fork(child)
    assert checker.check(THIRD_ORG, PROCUREMENT).outcome is Outcome.ALLOW


def test_decision_group_is_a_sequence() -> None:
    from credit_check import DecisionGroup

    group = DecisionGroup([])
    assert group.outcome is Outcome.ALLOW and list(group) == [] and not group.degraded


def test_keyword_settings_override_a_settings_object(
    service: FakeService, tmp_path: Path
) -> None:
    from credit_check import Settings

    base = Settings.explicit(base_url=BASE, api_key="secret", department="one",
                             data_dir=tmp_path, encryption_key=KEY)
    with Checker(settings=base, department="two", start=False) as checker:
        assert checker.settings.department == "two"
        assert checker.settings.api_key is not None
        assert checker.settings.api_key.get_secret_value() == "secret"
        assert "secret" not in repr(checker)


def test_pilot_codes_are_accepted_with_a_warning(
    service: FakeService, make_checker: MakeChecker
) -> None:
    from credit_check import PilotCodeWarning

    pilot = "91350100M000100Y44"  # fails its check character
    checker = make_checker(pilot_codes=[pilot])
    with pytest.warns(PilotCodeWarning):
        d = checker.check(pilot, PROCUREMENT)
    assert d.outcome is Outcome.ALLOW


def test_nothing_the_service_sends_crashes_check(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG), entry(OTHER_ORG))
    checker = make_checker()
    for mode in (400, 401, 404, 500, "garbage", "schema", "timeout"):
        service.modes["lookup"] = mode
        service.modes["batch"] = mode
        checker._cache.clear()
        assert checker.check(ORG, PROCUREMENT).degraded
        assert all(d.degraded for d in checker.check_many([ORG, OTHER_ORG], PROCUREMENT))


def test_every_decision_is_in_the_outbox_before_check_returns(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG))
    checker = make_checker()
    checker.check(ORG, PROCUREMENT)
    d = checker.check(ORG, PROCUREMENT)
    local = checker.check_local(THIRD_ORG, PROCUREMENT)
    assert local is not None
    outbox = checker._outbox
    assert outbox is not None
    for decision in (d, local):
        record = outbox.decision(decision.decision_id)
        assert record is not None and record.outcome is decision.outcome
    assert checker.status().outbox_pending == 3
    assert checker._outbox is not None and checker._outbox.sender is not None
    assert checker._outbox.sender.flush(5)
    assert {r["decision_id"] for r in service.feedback} >= {d.decision_id, local.decision_id}
