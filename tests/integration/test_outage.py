"""Rule 9 end to end: with the list service down — nothing listening, or a blackhole that
accepts connections and never answers — checks stop waiting out timeouts once the breaker
opens, a cold CLI check returns within ready_timeout plus one connect timeout, and the
service coming back closes the breaker at the next probe."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _sandbox_support import DEPARTMENT, ENCRYPTION_KEY

from credit_check import Checker, Outcome, Transaction
from credit_check._server import SandboxServer

ORG = "91350100M000100Y43"
TX = Transaction(scenario="procurement", case_id="OUT-1")
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 2.0


@pytest.fixture
def refused_url() -> str:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def blackhole_url() -> Iterator[str]:
    """A listening socket that is never read from: connects succeed, reads time out."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(128)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def _checker(url: str, data_dir: Path, sandbox: SandboxServer, **kw: object) -> Checker:
    return Checker(base_url=url, api_key=sandbox.demo_key, department=DEPARTMENT,
                   data_dir=data_dir, service_public_key=sandbox.public_key,
                   encryption_key=ENCRYPTION_KEY, connect_timeout=CONNECT_TIMEOUT,
                   read_timeout=READ_TIMEOUT, start=False, feedback=False, **kw)  # type: ignore[arg-type]


def _latencies(checker: Checker, n: int) -> list[float]:
    spent = []
    for _ in range(n):
        started = time.monotonic()
        d = checker.check(ORG, TX)
        spent.append(time.monotonic() - started)
        assert d.degraded
    return spent


@pytest.mark.parametrize("down", ["refused_url", "blackhole_url"])
def test_checks_during_an_outage_return_at_once_after_the_first_few(
    down: str, request: pytest.FixtureRequest, sandbox: SandboxServer, tmp_path: Path
) -> None:
    data = tmp_path / "sdk"
    # A catalogue and snapshot from the real service, then the service is gone.
    with _checker(sandbox.base_url, data, sandbox) as first:
        assert first.sync()
    url = request.getfixturevalue(down)
    checker = _checker(url, data, sandbox)
    try:
        # ORG is not listed, but the fallback must not depend on that: force a lookup by
        # making the snapshot stale.
        checker._syncer._set_fresh_until(float("-inf"))
        spent = _latencies(checker, 20)
        assert checker.status().breaker == "open"
        # The first check pays for the attempts that open the breaker, the others nothing.
        assert sum(spent[:2]) < 2 * (CONNECT_TIMEOUT + READ_TIMEOUT) + 1
        assert max(spent[2:]) < 0.05 * CONNECT_TIMEOUT, spent
    finally:
        checker.close()


def test_the_service_coming_back_closes_the_breaker_at_the_next_probe(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    checker = _checker(sandbox.base_url, tmp_path / "sdk", sandbox, breaker_cooldown=0.2)
    try:
        assert checker.sync()
        checker._syncer._set_fresh_until(float("-inf"))  # every check looks up online
        port = sandbox.port
        sandbox.stop()
        _latencies(checker, 3)
        assert checker.status().breaker == "open"
        revived = SandboxServer(db_path=sandbox.db_path, demo=True, port=port)
        revived.start()
        try:
            time.sleep(0.5)  # past the cooldown: the next lookup is the probe
            d = checker.check(ORG, TX)
            assert not d.degraded and d.outcome is Outcome.ALLOW
            assert checker.status().breaker == "closed"
        finally:
            revived.stop()
    finally:
        checker.close()


def _cli_env(url: str, tmp_path: Path, ready_timeout: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_CHECK_")}
    env.update({
        "CREDIT_CHECK_BASE_URL": url, "CREDIT_CHECK_API_KEY": "k",
        "CREDIT_CHECK_DEPARTMENT": DEPARTMENT,
        "CREDIT_CHECK_DATA_DIR": str(tmp_path / "cli-data"),  # empty: a cold start
        "CREDIT_CHECK_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "CREDIT_CHECK_READY_TIMEOUT": str(ready_timeout),
        "CREDIT_CHECK_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT),
        "PYTHONIOENCODING": "utf-8",
    })
    return env


@pytest.mark.parametrize("down", ["refused_url", "blackhole_url"])
def test_a_cold_cli_check_with_the_service_down_returns_within_the_ready_timeout(
    down: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Default read timeout (5 s) and ready_timeout 10 s: the blackhole's first timed-out
    read opens the breaker, so the check does not wait the whole ready_timeout, and
    closing does not wait to deliver what cannot be delivered."""
    ready_timeout = 10.0
    url = request.getfixturevalue(down)
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "credit_check._cli", "check", ORG, "--scenario", "procurement"],
        capture_output=True, text=True, encoding="utf-8", errors="replace",
        env=_cli_env(url, tmp_path, ready_timeout), cwd=tmp_path, timeout=60)
    spent = time.monotonic() - started
    assert proc.returncode == 4, proc.stdout + proc.stderr  # the REVIEW fallback
    assert "DEGRADED" in proc.stdout
    assert spent < ready_timeout + CONNECT_TIMEOUT, spent
