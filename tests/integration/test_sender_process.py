"""The default sender runs in a child process of the application: delivery never holds the
request threads' GIL; the child goes when its parent goes (the role is then free for the next
process); a child that cannot start falls back, loudly, to a thread."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _sandbox_support import DEPARTMENT, ENCRYPTION_KEY, admin

from credit_check import Checker, Transaction
from credit_check._roles import SENDER_LOCK, RoleLock
from credit_check._server import SandboxServer

TX = Transaction(scenario="procurement", case_id="SENDER-PROCESS")
CLEAN = "91350100M000100Y43"


def _checker(sandbox: SandboxServer, data_dir: Path, **kw: object) -> Checker:
    return Checker(base_url=sandbox.base_url, api_key=sandbox.demo_key, department=DEPARTMENT,
                   data_dir=data_dir, encryption_key=ENCRYPTION_KEY,
                   service_public_key=sandbox.public_key, **kw)  # type: ignore[arg-type]


def _received(sandbox: SandboxServer) -> set[str]:
    return {r["decision_id"] for r in admin(sandbox, "GET", "/v1/admin/feedback")["records"]
            if r["kind"] == "decision"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _wait(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_the_default_sender_is_a_child_process_that_delivers_and_stops_with_the_checker(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    checker = _checker(sandbox, tmp_path / "sdk")
    try:
        assert checker.wait_ready(10)
        ids = {checker.check(CLEAN, TX).decision_id for _ in range(30)}
        assert _wait(lambda: checker.status().sender_pid not in (None, -1, os.getpid()), 15)
        child = checker.status().sender_pid
        assert child is not None and _alive(child)
        assert _wait(lambda: ids <= _received(sandbox), 15)
    finally:
        checker.close()
    assert not _alive(child)
    assert RoleLock(tmp_path / "sdk" / SENDER_LOCK).holder() is None


def test_the_sender_process_makes_the_follow_ups_watches_off_the_application(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    # After the first sync the application's follower does not run again for an hour: the
    # watches of the cases checked meanwhile can only come from the sender process.
    checker = _checker(sandbox, tmp_path / "sdk", sync_interval=3600)
    try:
        assert checker.wait_ready(10)
        assert _wait(lambda: checker.status().sender_pid not in (None, -1, os.getpid()), 15)
        for i in range(20):
            checker.check(CLEAN, Transaction(scenario="procurement", case_id=f"WATCH-{i}"))
        assert _wait(lambda: checker.status().watched == 20, 15), checker.status().watched
    finally:
        checker.close()


APP = """
import json, sys, time
from credit_check import Checker
c = Checker(base_url=sys.argv[1], api_key=sys.argv[2], department="局", data_dir=sys.argv[3],
            encryption_key=sys.argv[4], service_public_key=sys.argv[5])
c.wait_ready(10)
deadline = time.monotonic() + 20
while c.status().sender_pid in (None, -1, c._pid) and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"sender": c.status().sender_pid}), flush=True)
time.sleep(120)
"""


def test_when_the_application_is_killed_its_sender_process_goes_too(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    app = subprocess.Popen([sys.executable, "-c", APP, sandbox.base_url, sandbox.demo_key,
                            str(tmp_path / "sdk"), ENCRYPTION_KEY, sandbox.public_key],
                           stdout=subprocess.PIPE, text=True)
    try:
        assert app.stdout is not None
        sender = json.loads(app.stdout.readline())["sender"]
        assert sender not in (None, app.pid) and _alive(sender)
        app.send_signal(signal.SIGKILL)
        app.wait(10)
        assert _wait(lambda: not _alive(sender), 10)
        assert RoleLock(tmp_path / "sdk" / SENDER_LOCK).try_acquire()  # free for the next
    finally:
        if app.poll() is None:
            app.kill()
            app.wait(10)
        assert app.stdout is not None
        app.stdout.close()


def test_a_sender_process_that_cannot_start_falls_back_to_a_thread_loudly(
        sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(sys, "executable", "/bin/false")  # every start fails at once
    checker = _checker(sandbox, tmp_path / "sdk")
    try:
        assert checker.wait_ready(10)
        ids = {checker.check(CLEAN, TX).decision_id for _ in range(5)}
        assert _wait(lambda: checker.status().sender_pid == os.getpid(), 20)
        assert _wait(lambda: ids <= _received(sandbox), 15)
    finally:
        checker.close()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("delivering from a thread" in m for m in errors), errors
