"""Freshness and rollback (protocol v1.1, DESIGN §9.2) against the scripted service:
older catalogues and snapshots refused and counted, frozen answers not refreshing the data
age, epochs, downgrades, a v1 service, and what survives a restart."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from _fake_service import BASE, ORG, OTHER_ORG, FakeService, entry

from credit_check import Checker, Outcome, Transaction
from credit_check._crypto import Signer, catalog_message, catalog_message_v2
from credit_check._datadir import DataDir
from credit_check._freshness import Freshness
from credit_check._models import CST
from credit_check._status import stale_reason
from credit_check._sync import Syncer
from credit_check._transport import Transport

PROCUREMENT = Transaction(scenario="procurement", case_id="CG-F")
LICENSING = Transaction(scenario="licensing", case_id="XK-F")
KEY = base64.b64encode(b"f" * 32).decode()


class Timer:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def service() -> Iterator[FakeService]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeService(rsps)


def syncer(tmp_path: Path, timer: Timer, **kw: Any) -> Syncer:
    transport = Transport(BASE, "k", retries=0, sleep=lambda s: None)
    options: dict[str, Any] = dict(pinned_key=None, interval=60, max_data_age=600,
                                   timer=timer)
    options.update(kw)
    s = Syncer(transport, DataDir(tmp_path), **options)
    s.load()
    return s


def watch_catalogue(service: FakeService) -> dict[str, Any]:
    """The demo catalogue with the watch list's licensing measure made a review."""
    newer = copy.deepcopy(service.catalog)
    newer["version"] = "2026.2"
    for m in newer["measures"]:
        if m["code"] == "P-005":
            m["effect"] = "review"
    return newer


def test_an_older_signed_catalogue_is_refused_logged_counted_and_not_persisted(
    service: FakeService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    timer = Timer()
    s = syncer(tmp_path, timer)
    assert s.sync_once()
    old = service.last["catalog"]  # serial 1, validly signed
    service.set_catalog(watch_catalogue(service))
    assert s.sync_once() and s.catalog is not None and s.catalog.serial == 2
    service.frozen["catalog"] = old  # a proxy replays the older answer
    with caplog.at_level(logging.WARNING, logger="credit_check"):
        assert s.sync_once()  # a lagging answer is not an error ...
    assert "catalogue serial 1 is older than the serial 2 held" in caplog.text
    assert s.catalog.serial == 2 and s.catalog.catalog.version == "2026.2"
    assert s.refused == 1
    # ... and the copy on disk is still the newer one after a restart.
    again = syncer(tmp_path, timer)
    assert again.catalog is not None and again.catalog.serial == 2
    assert again.sync_once() and again.catalog.serial == 2 and again.refused == 1


def test_a_frozen_snapshot_answer_does_not_refresh_the_data_age(
    service: FakeService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    timer = Timer()
    s = syncer(tmp_path, timer)
    assert s.sync_once()
    assert s.sync_once()  # an empty delta, issued afresh: refreshes
    service.frozen["snapshot"] = service.last["snapshot"]
    timer.now += 500
    with caplog.at_level(logging.WARNING, logger="credit_check"):
        assert s.sync_once()
    assert s.data_age() == 500 and s.replayed == 1
    assert "not newer than one already seen" in caplog.text
    timer.now += 101
    assert stale_reason(s) is not None and s.usable_snapshot(timer.now) is None
    del service.frozen["snapshot"]
    assert s.sync_once()
    assert s.data_age() == 0 and stale_reason(s) is None
    assert s.usable_snapshot(timer.now) is s.snapshot


def test_an_older_snapshot_version_in_the_same_epoch_is_ignored_and_counted(
    service: FakeService, tmp_path: Path
) -> None:
    s = syncer(tmp_path, Timer())
    assert s.sync_once()
    old = service.last["snapshot"]  # a full answer of version 1
    service.add(entry(ORG))
    assert s.sync_once() and s.snapshot is not None and s.snapshot.contains(ORG)
    service.modes["delta"] = 410  # the delta is gone: a full answer is fetched ...
    service.frozen["snapshot"] = old  # ... and the replayed older one comes back
    assert s.sync_once()
    assert s.snapshot.version == 2 and s.snapshot.contains(ORG) and s.refused == 1


def test_the_data_age_survives_a_restart(service: FakeService, tmp_path: Path) -> None:
    timer = Timer()
    assert syncer(tmp_path, timer).sync_once()
    timer.now += 700
    again = syncer(tmp_path, timer)
    assert again.snapshot is not None and again.data_age() == 700
    assert again.usable_snapshot(timer.now) is None  # persisted, but stale
    on_disk = json.loads((tmp_path / "freshness.json").read_text())
    assert on_disk["signed"] is True and on_disk["catalog_serial"] == 1


def test_a_persisted_snapshot_without_a_freshness_record_is_stale(
    service: FakeService, tmp_path: Path
) -> None:
    timer = Timer()
    assert syncer(tmp_path, timer).sync_once()
    (tmp_path / "freshness.json").unlink()
    again = syncer(tmp_path, timer)
    assert again.snapshot is not None and again.usable_snapshot(timer.now) is None
    assert "unknown" in (stale_reason(again) or "")


def test_a_damaged_freshness_record_is_logged_and_the_snapshot_is_stale(
    service: FakeService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    timer = Timer()
    assert syncer(tmp_path, timer).sync_once()
    (tmp_path / "freshness.json").write_text("{garbage")
    with caplog.at_level(logging.ERROR, logger="credit_check"):
        again = syncer(tmp_path, timer)
    assert "freshness record is damaged" in caplog.text
    assert again.usable_snapshot(timer.now) is None
    assert again.sync_once() and again.usable_snapshot(timer.now) is again.snapshot


def test_once_freshness_was_signed_an_answer_without_signature_v2_is_refused(
    service: FakeService, tmp_path: Path
) -> None:
    s = syncer(tmp_path, Timer())
    assert s.sync_once()
    service.v1 = True  # a proxy strips the v1.1 fields to replay old answers
    service.set_catalog(dict(service.catalog, version="2026.5"))
    assert not s.sync_once()
    assert s.last_error and "catalogue: an answer without signature_v2" in s.last_error
    assert "snapshot: snapshot version 1: no signature_v2" in s.last_error
    assert s.catalog is not None and s.catalog.serial == 1


def test_a_higher_epoch_resyncs_in_full_and_a_lower_one_is_refused(
    service: FakeService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = syncer(tmp_path, Timer())
    assert s.sync_once()
    service.add(entry(ORG))
    service.epoch, service.serial = 2, 1  # a restored backup: serials start over
    before = service.calls["snapshot"]
    with caplog.at_level(logging.WARNING, logger="credit_check"):
        assert s.sync_once()
    assert "epoch rose from 1 to 2" in caplog.text and "resyncing in full" in caplog.text
    assert service.calls["snapshot"] - before == 2  # the delta, then the full set
    assert s.freshness.epoch == 2 and s.snapshot is not None and s.snapshot.contains(ORG)
    service.epoch = 1
    refused = s.refused
    assert s.sync_once()
    assert s.freshness.epoch == 2 and s.refused > refused


def test_a_catalogue_answer_with_a_bad_signature_v2_is_refused(
    service: FakeService, tmp_path: Path
) -> None:
    s = syncer(tmp_path, Timer())
    assert s.sync_once()
    body = copy.deepcopy(service.last["catalog"][2])
    body["serial"] = 99  # the v1 signature still matches; the v2 one does not
    service.frozen["catalog"] = (200, {}, body)
    assert not s.sync_once()
    assert s.last_error and "signature" in s.last_error and s.catalog.serial == 1  # type: ignore[union-attr]


def test_upgrade_required_keeps_the_understood_catalogue_and_reports_it(
    service: FakeService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = syncer(tmp_path, Timer())
    service.upgrade_required = True
    with caplog.at_level(logging.ERROR, logger="credit_check"):
        assert s.sync_once() and s.sync_once()
    assert s.upgrade_required and caplog.text.count("upgrade credit-check") == 1
    signer = service.signer
    raw = service.catalog
    too_new = {"catalog": raw, "signature": signer.sign(catalog_message(raw)), "serial": 5,
               "epoch": 1, "schema": 3,
               "signature_v2": signer.sign(catalog_message_v2(raw, serial=5, epoch=1,
                                                              schema=3))}
    service.frozen["catalog"] = (200, {}, too_new)
    assert s.sync_once()
    assert s.catalog is not None and s.catalog.serial == 1  # a schema 3 one is not used


def test_a_snapshot_naming_a_newer_catalogue_fetches_it_at_once(
    service: FakeService, tmp_path: Path
) -> None:
    s = syncer(tmp_path, Timer())
    assert s.sync_once()
    service.frozen["catalog"] = service.last["catalog"]  # an instance lagging behind
    service.set_catalog(watch_catalogue(service))
    assert s.sync_once()
    assert s.catalog_behind == 2 and "older than the service's" in (stale_reason(s) or "")
    del service.frozen["catalog"]
    assert s.sync_once()
    assert s.catalog is not None and s.catalog.serial == 2 and s.catalog_behind is None


def test_a_v1_service_still_works_with_unproven_freshness(
    service: FakeService, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    service.v1 = True
    service.add(entry(ORG))
    with caplog.at_level(logging.WARNING, logger="credit_check"):
        checker = Checker(base_url=BASE, api_key="k", department="d", data_dir=tmp_path,
                          encryption_key=KEY, start=False, feedback=False)
        try:
            assert checker.sync() and checker.sync()
            assert checker.check(ORG, PROCUREMENT).outcome is Outcome.DENY
            status = checker.status()
        finally:
            checker.close()
    assert not status.freshness_signed and not status.stale and status.epoch is None
    assert status.catalog_serial is None and status.data_age is not None
    assert caplog.text.count("speaks protocol v1") == 1


def test_freshness_record_round_trips(tmp_path: Path) -> None:
    fresh, refreshed = Freshness(epoch=3, catalog_serial=7).with_issued(
        dt.datetime(2026, 5, 1, 8, 0, tzinfo=CST), 12.5)
    assert refreshed
    fresh.save(tmp_path / "f.json")
    assert Freshness.load(tmp_path / "f.json") == fresh
    assert (tmp_path / "f.json").stat().st_mode & 0o777 == 0o600
    same, again = fresh.with_issued(dt.datetime(2026, 5, 1, 8, 0, tzinfo=CST), 99.0)
    assert not again and same.received_at == 12.5


def test_other_keys_still_refuse_data(service: FakeService, tmp_path: Path) -> None:
    # A v2 signature by another key fails like a v1 one.
    s = syncer(tmp_path, Timer())
    assert s.sync_once()
    service.signer = Signer.generate()
    service.add(entry(OTHER_ORG))
    assert not s.sync_once()
    assert s.snapshot is not None and not s.snapshot.contains(OTHER_ORG)
