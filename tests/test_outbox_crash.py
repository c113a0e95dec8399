"""Crash test: a process making checks is SIGKILLed at random moments, again and again;
every check it completed (printed after ``check()`` returned, so after its record was
written to the journal) reaches the service once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import requests
from _outbox_child import make_outbox

from credit_check._server import SandboxServer
from credit_check._transport import Transport

CHILD = Path(__file__).with_name("_outbox_child.py")
MIN_CHECKS = 5_000
MIN_KILLS = 20
pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    server = SandboxServer(db_path=str(tmp_path / "sandbox.db"), demo=True, port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def received_records(server: SandboxServer) -> list[dict[str, Any]]:
    """Every record the service received, page by page."""
    records: list[dict[str, Any]] = []
    params = {"limit": "10000"}
    while True:
        resp = requests.get(server.base_url + "/v1/admin/feedback", timeout=30, params=params,
                            headers={"Authorization": f"Bearer {server.admin_key}"})
        resp.raise_for_status()
        page = resp.json()
        records += page["records"]
        if not page["has_more"]:
            return records
        params["cursor"] = page["next_cursor"]


def _read_lines(stream: IO[str], out: list[str], first: threading.Event) -> None:
    for line in stream:
        out.append(line.strip())
        first.set()


def test_no_completed_check_is_lost_across_random_kills(tmp_path: Path, sandbox: SandboxServer) -> None:
    rng = random.Random(20260301)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(CHILD.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    printed: list[str] = []
    kills = run = 0
    deadline = time.monotonic() + 120
    while (kills < MIN_KILLS or len(printed) < MIN_CHECKS) and time.monotonic() < deadline:
        run += 1
        lines: list[str] = []
        first = threading.Event()
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(data_dir), sandbox.base_url, sandbox.demo_key,
             f"r{run}", "3000"],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        assert child.stdout is not None
        reader = threading.Thread(target=_read_lines, args=(child.stdout, lines, first))
        reader.start()
        # Every fifth run completes and closes normally; the others die at a random moment.
        if run % 5:
            first.wait(30)
            time.sleep(rng.uniform(0.0, 0.4))
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait(60)
        reader.join()
        child.stdout.close()
        printed.extend(lines)
    assert kills >= MIN_KILLS and len(printed) >= MIN_CHECKS, (kills, len(printed))

    with make_outbox(data_dir, api_key=sandbox.demo_key) as outbox:
        transport = Transport(sandbox.base_url, sandbox.demo_key, read_timeout=30)
        sender = outbox.attach_sender(transport, batch_size=500, backoff=0.05,
                                      max_backoff=0.5)
        try:
            assert sender.flush(60.0)
        finally:
            sender.close(1.0)
            transport.close()
        status = outbox.status()
        assert (status.dead_lettered, status.undecryptable) == (0, 0)
        assert list((data_dir / "journal").iterdir()) == []  # every journal imported

    got = Counter(r["decision_id"] for r in received_records(sandbox) if r["kind"] == "decision")
    missing = [d for d in printed if got[d] == 0]
    twice = [d for d in printed if got[d] > 1]
    assert missing == [] and twice == [], (len(missing), len(twice))
    assert len(set(printed)) == len(printed)
