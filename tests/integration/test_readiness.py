"""Checker.readiness() (DESIGN §9.8) and the adapters' readiness endpoints, on the real
sandbox: ready means a catalogue and a record store that takes writes; an unwritable
outbox (a full or read-only file system, probed by writing) takes the instance out of
rotation, stale data does not."""

from __future__ import annotations

import datetime as dt
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _sandbox_support import DEPARTMENT, ENCRYPTION_KEY, Clock, MakeChecker
from _small_fs import fill, mounted_tmpfs

from credit_check import Checker
from credit_check._server import SandboxServer


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    yield from mounted_tmpfs(tmp_path, "the read-only directory variant runs instead")


def _checker(sandbox: SandboxServer, data_dir: Path, **kw: Any) -> Checker:
    checker = Checker(base_url=sandbox.base_url, api_key=sandbox.demo_key,
                      department=DEPARTMENT, data_dir=data_dir, encryption_key=ENCRYPTION_KEY,
                      service_public_key=sandbox.public_key, start=False, **kw)
    assert checker.sync(), checker.status().last_error
    return checker


def test_readiness_flips_when_the_file_system_of_the_outbox_is_full_and_back(
        sandbox: SandboxServer, small_fs: Path) -> None:
    checker = _checker(sandbox, small_fs / "sdk")
    try:
        assert checker.readiness().ready
        filler = fill(small_fs)
        found = checker.readiness()
        assert not found.ready and found.catalogue and not found.records_writable
        assert "记录无法写入" in found.problems[0] and "No space" in found.problems[0]
        filler.unlink()
        assert checker.readiness().ready
    finally:
        checker.close(0.0)


def test_readiness_flips_when_the_journal_directory_turns_read_only(
        sandbox: SandboxServer, small_fs: Path) -> None:
    checker = _checker(sandbox, small_fs / "sdk")
    journal = small_fs / "sdk" / "journal"
    try:
        checker.check("91350100M000100Y43", _tx())
        assert checker.readiness().ready
        # A read-only bind mount over the journal directory (root ignores mode bits).
        subprocess.run(["mount", "--bind", str(journal), str(journal)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(journal)], check=True)
            found = checker.readiness()
            assert not found.ready and not found.records_writable
            assert "Read-only" in found.problems[0]
        finally:
            subprocess.run(["umount", "-l", str(journal)], check=False)
        assert checker.readiness().ready
    finally:
        checker.close(0.0)


def test_readiness_flips_with_a_read_only_directory_for_an_unprivileged_user(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root ignores permission bits; the tmpfs variants run instead")
    checker = _checker(sandbox, tmp_path / "sdk")
    journal = tmp_path / "sdk" / "journal"
    try:
        checker.check("91350100M000100Y43", _tx())
        journal.chmod(stat.S_IRUSR | stat.S_IXUSR)
        assert not checker.readiness().ready
        journal.chmod(stat.S_IRWXU)
        assert checker.readiness().ready
    finally:
        journal.chmod(stat.S_IRWXU)
        checker.close(0.0)


def _tx() -> Any:
    from credit_check import Transaction

    return Transaction(scenario="licensing", case_id="READY-1")


def test_stale_data_is_reported_but_keeps_the_instance_ready(
        make_checker: MakeChecker, clock: Clock) -> None:
    checker = make_checker(max_data_age=60)
    clock.set(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))
    found = checker.readiness()
    assert found.status.stale and found.ready
    assert found.as_json()["stale"] is True and found.as_json()["ready"] is True


def test_without_a_catalogue_the_instance_is_not_ready(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    checker = Checker(base_url=sandbox.base_url, api_key=sandbox.demo_key,
                      department=DEPARTMENT, data_dir=tmp_path / "sdk",
                      encryption_key=ENCRYPTION_KEY, service_public_key=sandbox.public_key,
                      start=False)
    try:
        found = checker.readiness()
        assert not found.ready and not found.catalogue and found.records_writable
        assert "尚无措施目录" in found.problems[0]
    finally:
        checker.close(0.0)
