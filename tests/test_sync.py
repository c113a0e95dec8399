"""Snapshot and catalogue sync: signatures verified, deltas applied, full resync on 410 or
checksum mismatch, ETag polling, persistence across restarts, last good copy kept."""

from __future__ import annotations

import base64
import datetime as dt
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from _fake_service import BASE, ORG, OTHER_ORG, THIRD_ORG, FakeService, entry

from credit_check import Checker, Outcome, Transaction
from credit_check._crypto import Signer
from credit_check._datadir import DataDir
from credit_check._exceptions import ServiceUnavailable
from credit_check._snapshot import SnapshotState
from credit_check._sync import Syncer
from credit_check._transport import Transport

PROCUREMENT = Transaction(scenario="procurement", case_id="CG-2")
KEY = base64.b64encode(b"s" * 32).decode()


@pytest.fixture
def service() -> Iterator[FakeService]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeService(rsps)


def syncer(tmp_path: Path, pinned: str | None = None, **kw: Any) -> Syncer:
    transport = Transport(BASE, "k", retries=0, sleep=lambda s: None)
    return Syncer(transport, DataDir(tmp_path), pinned_key=pinned, interval=60, **kw)


def checker(tmp_path: Path, **kw: Any) -> Checker:
    options: dict[str, Any] = dict(base_url=BASE, api_key="k", department="d",
                                   data_dir=tmp_path, encryption_key=KEY, start=False,
                                   feedback=False)
    options.update(kw)
    return Checker(**options)


def test_first_sync_is_full_then_deltas(service: FakeService, tmp_path: Path) -> None:
    s = syncer(tmp_path)
    service.add(entry(ORG))
    assert s.sync_once() and s.ready.is_set()
    assert s.snapshot is not None and s.snapshot.contains(ORG)
    service.add(entry(OTHER_ORG))
    assert s.sync_once()
    assert s.snapshot.version == service.version and s.snapshot.contains(OTHER_ORG)
    assert service.calls["snapshot"] == 2


def test_catalogue_is_polled_with_its_etag(service: FakeService, tmp_path: Path) -> None:
    s = syncer(tmp_path)
    assert s.sync_once()
    first = s.catalog
    assert s.sync_once()
    assert s.catalog is first  # 304: kept
    service.catalog = dict(service.catalog, version="2026.2")
    assert s.sync_once()
    assert s.catalog is not None and s.catalog.catalog.version == "2026.2"


def test_readers_in_other_threads_only_ever_see_whole_verified_versions(
    service: FakeService, tmp_path: Path
) -> None:
    """Each version lists exactly one of two subjects among ~2,000 other prefixes, of which
    each delta swaps a tenth; a reader thread polling meanwhile never sees both or neither,
    nor a set that does not match its signed checksum, and no state it saw changes later."""
    rng = random.Random(3)
    service.extra_prefixes = {rng.getrandbits(32) for _ in range(2000)}
    service.add(entry(ORG))
    s = syncer(tmp_path)
    assert s.sync_once()
    seen: dict[int, SnapshotState] = {}
    faults: list[str] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            state = s.snapshot
            assert state is not None
            if state.version not in seen:
                seen[state.version] = state
                if state.contains(ORG) == state.contains(OTHER_ORG):
                    faults.append(f"version {state.version}: both or neither listed")
                if state.prefixes.checksum() != state.checksum:
                    faults.append(f"version {state.version}: checksum mismatch")

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for step in range(10):
            extra = sorted(service.extra_prefixes)
            service.extra_prefixes = (set(rng.sample(extra, 1800))
                                      | {rng.getrandbits(32) for _ in range(200)})
            service.entries = [entry(OTHER_ORG if step % 2 == 0 else ORG)]
            service.publish()
            assert s.sync_once()
            deadline = time.monotonic() + 5
            while service.version not in seen and time.monotonic() < deadline:
                time.sleep(0.001)
    finally:
        stop.set()
        reader.join()
    assert not faults and len(seen) == 11
    assert service.calls["snapshot"] == 11  # one full answer, then deltas only
    for version, state in seen.items():
        assert state.version == version and state.prefixes.checksum() == state.checksum


def test_a_persisted_snapshot_in_the_older_file_format_is_ignored_then_replaced(
    service: FakeService, tmp_path: Path
) -> None:
    service.add(entry(ORG))
    (tmp_path / "snapshot.bin").write_bytes(b"CCSNAP1\n" + bytes(64))
    s = syncer(tmp_path, pinned=service.signer.public_key)
    s.load()
    assert s.snapshot is None
    assert s.sync_once() and s.snapshot is not None and s.snapshot.contains(ORG)
    restarted = syncer(tmp_path, pinned=service.signer.public_key)
    restarted.load()
    assert restarted.snapshot is not None and restarted.snapshot.version == service.version


def test_410_triggers_a_full_resync(service: FakeService, tmp_path: Path) -> None:
    s = syncer(tmp_path)
    assert s.sync_once()
    service.add(entry(ORG))
    service.modes["delta"] = 410
    assert s.sync_once()
    assert s.snapshot is not None and s.snapshot.contains(ORG)
    assert service.calls["snapshot"] == 3  # full, 410, full


def test_checksum_mismatch_triggers_a_full_resync(service: FakeService, tmp_path: Path) -> None:
    s = syncer(tmp_path)
    assert s.sync_once()
    service.add(entry(ORG))
    service.modes["delta"] = "checksum"
    assert s.sync_once()
    assert s.snapshot is not None and s.snapshot.contains(ORG)
    assert s.snapshot.version == service.version
    assert service.calls["snapshot"] == 3


@pytest.mark.parametrize("mode", [("snapshot_sig", "badsig"), ("catalog_sig", "badsig"),
                                  ("snapshot", "garbage"), ("snapshot", "schema"),
                                  ("catalog", "schema"), ("snapshot", 500),
                                  ("catalog", "timeout")])
def test_bad_data_is_rejected_and_the_last_good_copy_keeps_serving(
    service: FakeService, tmp_path: Path, mode: tuple[str, Any]
) -> None:
    service.add(entry(ORG))
    s = syncer(tmp_path)
    assert s.sync_once()
    good_snapshot, good_catalog = s.snapshot, s.catalog
    service.catalog = dict(service.catalog, version="2026.9")
    service.add(entry(OTHER_ORG))
    service.modes[mode[0]] = mode[1]
    assert not s.sync_once()
    assert s.last_error
    which = "catalogue" if mode[0].startswith("catalog") else "snapshot"
    assert which in s.last_error
    if which == "snapshot":
        assert s.snapshot is good_snapshot and s.snapshot.contains(ORG)
    else:
        assert s.catalog is good_catalog
    del service.modes[mode[0]]
    assert s.sync_once() and s.last_error is None


def test_tofu_key_is_stored_and_a_changed_key_is_refused(
    service: FakeService, tmp_path: Path
) -> None:
    assert syncer(tmp_path).sync_once()
    assert (tmp_path / "service_public.key").read_text() == service.signer.public_key
    service.signer = Signer.generate()
    s = syncer(tmp_path)
    assert not s.sync_once()
    assert s.last_error and "different signing key" in s.last_error


def test_restarted_checker_serves_the_persisted_snapshot_with_the_service_down(
    service: FakeService, tmp_path: Path
) -> None:
    service.add(entry(ORG))
    with checker(tmp_path) as first:
        assert first.sync()
    service.down = True
    with checker(tmp_path) as second:
        assert second.ready and second.wait_ready(0)
        status = second.status()
        assert status.snapshot_version == service.version and status.catalog_version
        assert status.snapshot_age is not None
        d = second.check(THIRD_ORG, PROCUREMENT)
        assert d.outcome is Outcome.ALLOW and not d.degraded
        listed = second.check(ORG, PROCUREMENT)
        assert listed.degraded and listed.outcome is Outcome.REVIEW


def test_persisted_snapshot_signed_by_another_key_is_ignored(
    service: FakeService, tmp_path: Path
) -> None:
    with checker(tmp_path) as first:
        assert first.sync()
    with checker(tmp_path, service_public_key=Signer.generate().public_key) as second:
        assert not second.ready


def test_the_sync_thread_syncs_and_stops(service: FakeService, tmp_path: Path) -> None:
    done = threading.Event()
    s = syncer(tmp_path, on_success=done.set)
    s.start()
    assert done.wait(5) and s.ready.is_set()
    s.stop()
    assert not s.thread_alive


def test_the_sync_thread_survives_failures_and_a_wake_retries(
    service: FakeService, tmp_path: Path
) -> None:
    service.down = True
    done = threading.Event()
    s = syncer(tmp_path, on_success=done.set)
    s.start()
    service.down = False
    s.wake()
    assert done.wait(5)
    s.stop()


def test_post_sync_failures_do_not_kill_the_thread(service: FakeService, tmp_path: Path) -> None:
    calls: list[int] = []
    second = threading.Event()

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ServiceUnavailable("post-check hiccup")
        second.set()

    s = syncer(tmp_path, on_success=flaky)
    s.start()
    s.wake()
    deadline = dt.datetime.now() + dt.timedelta(seconds=5)
    while not second.is_set() and dt.datetime.now() < deadline:
        s.wake()
        second.wait(0.05)
    s.stop()
    assert second.is_set()
