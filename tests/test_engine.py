"""How the Checker's engine decides on what the service shows and when: withheld roles
(rule 11), no snapshot or a stale one (rule 12), no catalogue yet, and an outage behind an
open circuit breaker (rule 9) — against the scripted list service."""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from _fake_service import BASE, CLEAN_ORG, ORG, OTHER_ORG, PERSON, FakeService, entry

from credit_check import Checker, Outcome, Subject, Transaction
from credit_check._models import CST

PROCUREMENT = Transaction(scenario="procurement", case_id="CG-E")
MARKET = Transaction(scenario="market_access", case_id="SC-E")
PUBLIC = Transaction(scenario="public_resource", case_id="GG-E")
KEY = base64.b64encode(b"e" * 32).decode()
CAUSE_ZH = "本部门密钥无权查看自然人信用信息"
CAUSE_EN = "this department key may not see natural persons' entries"


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
                                       clock=clock, start=False, feedback=False)
        options.update(kw)
        checker = Checker(**options)
        made.append(checker)
        if sync:
            assert checker.sync(), checker.status().last_error
        return checker

    yield make
    service.down = False
    service.modes.clear()
    for c in made:
        c.close()


# --- rule 11 ---------------------------------------------------------------------------


def test_a_person_withheld_from_the_key_is_review_degraded_and_said_once(
    service: FakeService, make_checker: MakeChecker, caplog: pytest.LogCaptureFixture
) -> None:
    service.add(entry(PERSON, subject_kind="person"))
    service.allow_persons = False
    checker = make_checker(fallback="allow")
    with caplog.at_level(logging.WARNING, logger="credit_check"):
        first = checker.check(Subject.person(PERSON), PROCUREMENT)
        second = checker.check(PERSON, PROCUREMENT)
    for d in (first, second):
        assert d.outcome is Outcome.REVIEW and d.degraded and not d.matches
        assert any(CAUSE_ZH in r and CAUSE_EN in r for r in d.reasons)
    assert caplog.text.count(CAUSE_EN) == 1  # once per cause, not per check
    assert PERSON not in caplog.text
    status = checker.status()
    assert [c.split(":")[0] for c in status.degraded_causes] == ["withheld"]
    assert CAUSE_EN in status.degraded_causes[0]
    # A re-check would be withheld again: not queued for a post-check.
    assert status.post_check_pending == 0


def test_a_withheld_person_takes_a_deny_fallback(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(PERSON, subject_kind="person"))
    service.allow_persons = False
    checker = make_checker(fallback="review,procurement=deny")
    assert checker.check(PERSON, PROCUREMENT).outcome is Outcome.DENY


def test_a_withheld_representative_counts_only_where_measures_target_representatives(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG, "tax.a_grade", kind="red"))  # in the snapshot: looked up
    service.reps[ORG] = PERSON
    service.allow_persons = False
    checker = make_checker()
    market = checker.check(ORG, MARKET)
    assert market.outcome is Outcome.REVIEW and market.degraded
    assert any("the legal representative" in r and CAUSE_EN in r for r in market.reasons)
    procurement = checker.check(ORG, PROCUREMENT)  # no measure targets the representative
    assert procurement.outcome is Outcome.ALLOW and not procurement.degraded


def test_a_caller_given_representative_withheld_by_the_service_is_not_clean(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(PERSON, subject_kind="person"))
    service.allow_persons = False
    checker = make_checker()
    org = Subject.organization(CLEAN_ORG, legal_representative=Subject.person(PERSON))
    d = checker.check(org, MARKET)
    assert d.outcome is Outcome.REVIEW and d.degraded


def test_the_withheld_cause_clears_when_persons_are_shown_again(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(PERSON, subject_kind="person"))
    service.allow_persons = False
    checker = make_checker(listed_ttl=1, not_listed_ttl=1)
    checker.check(PERSON, PROCUREMENT)
    assert checker.status().degraded_causes
    service.allow_persons = True
    checker._cache.clear()
    assert checker.check(PERSON, PROCUREMENT).outcome is Outcome.DENY
    assert checker.status().degraded_causes == ()


def test_a_v1_answer_without_withheld_decides_as_before(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.v1 = True
    service.add(entry(PERSON, subject_kind="person"))
    checker = make_checker()
    d = checker.check(PERSON, PROCUREMENT)
    assert d.outcome is Outcome.DENY and not d.degraded


# --- rule 12: the snapshot is an optimisation, never a precondition --------------------


def test_without_a_snapshot_a_subject_is_looked_up_online_not_degraded(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG))
    service.modes["snapshot"] = 500
    checker = make_checker(sync=False)
    assert not checker.sync()  # the catalogue arrived, the snapshot did not
    assert checker.ready and checker.status().stale
    d = checker.check(ORG, PROCUREMENT)
    assert d.outcome is Outcome.DENY and not d.degraded
    clean = checker.check(CLEAN_ORG, PROCUREMENT)
    assert clean.outcome is Outcome.ALLOW and not clean.degraded
    assert service.calls["lookup"] == 2


def test_stale_data_is_looked_up_online_and_the_status_says_why(
    service: FakeService, make_checker: MakeChecker, clock: Clock
) -> None:
    checker = make_checker(max_data_age=600)
    service.modes["snapshot"] = "timeout"  # the snapshot stops refreshing
    service.add(entry(OTHER_ORG))  # listed after the last good snapshot
    assert checker.check(OTHER_ORG, PROCUREMENT).outcome is Outcome.ALLOW  # fresh: local
    clock.advance(601)
    status = checker.status()
    assert status.stale and status.data_age == pytest.approx(601)
    assert status.stale_reason and "max_data_age" in status.stale_reason
    d = checker.check(OTHER_ORG, PROCUREMENT)
    assert d.outcome is Outcome.DENY and not d.degraded


def test_stale_data_and_the_service_down_decide_degraded_and_post_check(
    service: FakeService, make_checker: MakeChecker, clock: Clock
) -> None:
    checker = make_checker(max_data_age=600, max_stale=3600)
    service.down = True
    clock.advance(601)
    d = checker.check(CLEAN_ORG, PROCUREMENT)
    # Not in the (stale) snapshot: decided on it, but degraded and queued for a re-check.
    assert d.outcome is Outcome.ALLOW and d.degraded
    assert checker.status().post_check_pending == 1
    clock.advance(3600)  # older than max_stale too: no answer is usable
    d = checker.check(CLEAN_ORG, PROCUREMENT)
    assert d.outcome is Outcome.REVIEW and d.degraded


def test_a_restarted_checker_does_not_take_its_old_snapshot_for_fresh(
    service: FakeService, make_checker: MakeChecker, clock: Clock
) -> None:
    make_checker(max_data_age=600).close()
    service.add(entry(OTHER_ORG))
    clock.advance(900)
    service.modes["snapshot"] = 500
    again = make_checker(sync=False, max_data_age=600)
    assert again.ready  # the persisted catalogue
    status = again.status()
    assert status.stale and status.data_age == pytest.approx(900)
    assert again.check(OTHER_ORG, PROCUREMENT).outcome is Outcome.DENY


# --- readiness ----------------------------------------------------------------------------


def test_without_a_catalogue_local_checks_answer_none_for_a_thread(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.down = True
    checker = make_checker(sync=False)
    assert checker.check_local(CLEAN_ORG, PROCUREMENT) is None


def test_check_waits_for_the_first_catalogue_instead_of_falling_back(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG))
    checker = make_checker(sync=False, start=True, ready_timeout=30)
    d = checker.check(ORG, PROCUREMENT)  # the sync thread brings the catalogue
    assert d.outcome is Outcome.DENY and not d.degraded


def test_check_stops_waiting_once_the_service_is_known_to_be_down(
    service: FakeService, make_checker: MakeChecker
) -> None:
    import time

    service.down = True
    checker = make_checker(sync=False, start=True, ready_timeout=60)
    started = time.monotonic()
    d = checker.check(CLEAN_ORG, PROCUREMENT)
    assert time.monotonic() - started < 10  # not the 60 s ready_timeout
    assert d.outcome is Outcome.REVIEW and d.degraded
    status = checker.status()
    assert status.breaker == "open"
    assert [c.split(":")[0] for c in status.degraded_causes] == [
        "no_catalogue", "stale_data", "breaker_open"]


# --- rule 9: the breaker --------------------------------------------------------------------


def test_an_outage_opens_the_breaker_and_checks_stop_calling_the_service(
    service: FakeService, make_checker: MakeChecker
) -> None:
    service.add(entry(ORG), entry(OTHER_ORG))
    checker = make_checker()
    service.down = True
    for _ in range(5):
        d = checker.check(ORG, PROCUREMENT)
        assert d.degraded and d.outcome is Outcome.REVIEW
    # lookup_retries=1: two attempts for the first check, one for the second opens the
    # breaker (three consecutive failures); the other checks send nothing.
    assert service.calls["lookup"] == 3
    assert checker.status().breaker == "open"
    assert any("circuit open" in r for r in checker.check(OTHER_ORG, PROCUREMENT).reasons)
    assert checker.check(CLEAN_ORG, PROCUREMENT).degraded is False  # fresh snapshot: local
