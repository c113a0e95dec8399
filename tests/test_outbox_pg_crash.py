"""Crash test of the outbox in PostgreSQL: two worker processes sharing one outbox database
(each on its own data directory, as containers would be) make checks and are SIGKILLed at
random moments, again and again — the sender among them too; every check a worker completed
(printed after ``check()`` returned, so after its INSERT committed) reaches the service
once, and the outbox holds one record per decision."""

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
from typing import IO

import psycopg
import pytest
from _outbox_child import CHECKER_KEY
from test_outbox_crash import received_records

from credit_check._crypto import FieldCipher, feedback_key
from credit_check._outbox._pg_outbox import PgOutbox
from credit_check._pg import Database
from credit_check._server import SandboxServer
from credit_check._transport import Transport

CHILD = Path(__file__).with_name("_outbox_child.py")
MIN_CHECKS = 2_000
MIN_KILLS = 12
ROUNDS_FOR = 90.0  # seconds; the whole test stays well under 3 minutes
pytestmark = pytest.mark.slow


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    server = SandboxServer(db_path=str(tmp_path / "sandbox.db"), demo=True, port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _read_lines(stream: IO[str], out: list[str], first: threading.Event) -> None:
    for line in stream:
        out.append(line.strip())
        first.set()


def test_no_completed_check_is_lost_or_doubled_across_random_kills(
        tmp_path: Path, sandbox: SandboxServer, pg_url: str) -> None:
    rng = random.Random(20261115)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(CHILD.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
    printed: list[str] = []
    kills = run = 0
    deadline = time.monotonic() + ROUNDS_FOR
    while (kills < MIN_KILLS or len(printed) < MIN_CHECKS) and time.monotonic() < deadline:
        run += 1
        workers = []
        for host in ("a", "b"):
            lines: list[str] = []
            first = threading.Event()
            child = subprocess.Popen(
                [sys.executable, str(CHILD), str(tmp_path / host), sandbox.base_url,
                 sandbox.demo_key, f"r{run}{host}", "1500", pg_url],
                stdout=subprocess.PIPE, text=True, env=env)
            assert child.stdout is not None
            reader = threading.Thread(target=_read_lines, args=(child.stdout, lines, first))
            reader.start()
            workers.append((child, reader, lines, first))
        # Every fourth round completes and closes normally; in the others each worker dies
        # at its own random moment.
        for child, _, _, first in workers:
            if run % 4:
                first.wait(30)
                time.sleep(rng.uniform(0.0, 0.5))
                child.send_signal(signal.SIGKILL)
                kills += 1
        for child, reader, lines, _ in workers:
            child.wait(60)
            reader.join()
            assert child.stdout is not None
            child.stdout.close()
            printed.extend(lines)
    assert kills >= MIN_KILLS and len(printed) >= MIN_CHECKS, (kills, len(printed))

    db = Database(pg_url, what="test")
    outbox = PgOutbox(db, cipher=FieldCipher.from_text(CHECKER_KEY),
                      hmac_key=feedback_key(sandbox.demo_key))
    transport = Transport(sandbox.base_url, sandbox.demo_key, read_timeout=30)
    sender = outbox.attach_sender(transport, batch_size=500, backoff=0.05, max_backoff=0.5)
    try:
        assert sender.flush(60.0)
        status = outbox.status()
        assert (status.pending, status.dead_lettered, status.undecryptable) == (0, 0, 0)
    finally:
        outbox.close(1.0)
        transport.close()
        db.close()

    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT decision_id FROM credit_check_outbox WHERE kind = "
                            "'decision'").fetchall()
    stored = Counter(r[0] for r in rows)
    got = Counter(r["decision_id"] for r in received_records(sandbox) if r["kind"] == "decision")
    missing = [d for d in printed if got[d] == 0 or stored[d] == 0]
    twice = [d for d, n in (got + stored).items() if n > 2]
    assert missing == [] and twice == [], (len(missing), len(twice))
    assert len(set(printed)) == len(printed)
