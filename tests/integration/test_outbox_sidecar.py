"""``credit-check outbox run``: the data directory's sender as its own process. Checkers
with ``sender=False`` run no sender thread; the sidecar delivers their records; a killed
sidecar is replaced by the next process that asks for the role, with nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from _sandbox_support import DEPARTMENT, ENCRYPTION_KEY, admin

from credit_check import Checker, Transaction
from credit_check._server import SandboxServer

TX = Transaction(scenario="procurement", case_id="SIDECAR")


def _sidecar(sandbox: SandboxServer, data_dir: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "CREDIT_CHECK_DATA_DIR": str(data_dir),
           "CREDIT_CHECK_BASE_URL": sandbox.base_url, "CREDIT_CHECK_API_KEY": sandbox.demo_key,
           "CREDIT_CHECK_ENCRYPTION_KEY": ENCRYPTION_KEY}
    return subprocess.Popen([sys.executable, "-m", "credit_check._cli", "outbox", "run",
                             "--timeout", "5"], env=env, stderr=subprocess.PIPE, text=True)


def _received(sandbox: SandboxServer) -> set[str]:
    return {r["decision_id"] for r in admin(sandbox, "GET", "/v1/admin/feedback")["records"]
            if r["kind"] == "decision"}


def _wait_for(ids: set[str], sandbox: SandboxServer, seconds: float) -> set[str]:
    deadline = time.monotonic() + seconds
    got = _received(sandbox)
    while not ids <= got and time.monotonic() < deadline:
        time.sleep(0.1)
        got = _received(sandbox)
    return got


def test_a_sidecar_delivers_for_workers_without_a_sender_and_is_replaced_when_killed(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "sdk"
    checker = Checker(base_url=sandbox.base_url, api_key=sandbox.demo_key,
                      department=DEPARTMENT, data_dir=data_dir, encryption_key=ENCRYPTION_KEY,
                      service_public_key=sandbox.public_key, sender=False)
    sidecars = [_sidecar(sandbox, data_dir)]
    try:
        assert checker.wait_ready(10)
        assert not any(t.name == "credit-check-outbox" for t in threading.enumerate())
        first = {checker.check("91350100M000100Y43", TX).decision_id for _ in range(50)}
        assert first <= _wait_for(first, sandbox, 15)
        assert checker.status().sender_pid == sidecars[0].pid
        # A second sidecar waits for the role; killing the first hands it over.
        sidecars.append(_sidecar(sandbox, data_dir))
        time.sleep(0.5)
        sidecars[0].send_signal(signal.SIGKILL)
        sidecars[0].wait(10)
        second = {checker.check("91350100M000100Y43", TX).decision_id for _ in range(50)}
        assert second <= _wait_for(second, sandbox, 15)
        assert checker.status().sender_pid == sidecars[1].pid
        sidecars[1].send_signal(signal.SIGTERM)  # stops cleanly
        assert sidecars[1].wait(15) == 0
    finally:
        checker.close()
        for proc in sidecars:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            assert proc.stderr is not None
            proc.stderr.close()
