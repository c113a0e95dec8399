"""Chaos: a real gunicorn (4 sync workers, with and without --preload) and a real uvicorn
(--workers 2), each sharing one data directory that starts cold (no key file, no
snapshot), take over a thousand guarded requests while workers — and once the whole server,
master included — are SIGKILLed. Then: every decision id a client saw is at the service
exactly once, no record is undecryptable, no subject whose correct outcome is DENY was
answered 2xx, and no 2xx went out without a decision.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
ENCRYPTION_KEY = "Y2hhb3MtdGVzdC1rZXktMzItYnl0ZXMtbG9uZyEhIQ=="
DENIED = [SHOWCASE["court_defaulter_org"]]
REQUESTS = 1200
CLIENTS = 4
SECONDS = 150  # the whole run's bound, per server kind


def _clean(i: int) -> str:
    from credit_check._ids import org_code_check_char, uscc_check_char

    org = f"CH{i:06d}"
    body = "91350100" + org + org_code_check_char(org)
    return body + uscc_check_char(body)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    server = SandboxServer(db_path=tmp_path_factory.mktemp("svc") / "s.db", demo=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One server kind under test, restartable, in its own process group."""

    def __init__(self, kind: str, data_dir: Path, env: dict[str, str]) -> None:
        self.kind, self.data_dir, self.env = kind, data_dir, env
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        bind = f"127.0.0.1:{self.port}"
        if self.kind.startswith("gunicorn"):
            cmd = [sys.executable, "-m", "gunicorn", "-w", "4", "-b", bind, "--timeout", "30",
                   "--graceful-timeout", "2", "--log-level", "warning"]
            if self.kind.endswith("preload"):
                cmd.append("--preload")
            return [*cmd, "_chaos_app:wsgi"]
        return [sys.executable, "-m", "uvicorn", "--workers", "2", "--host", "127.0.0.1",
                "--port", str(self.port), "--lifespan", "off", "--log-level", "warning",
                "--factory", "_chaos_app:asgi"]

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command(), cwd=HERE, env=self.env,
                                     start_new_session=True, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError(f"{self.kind} did not start")

    def workers(self) -> list[int]:
        assert self.proc is not None
        found = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                               text=True).stdout.split()
        return [int(p) for p in found]

    def kill_all(self) -> None:
        # The master and every worker at once, as a host crash would.
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def _client(server: Server, plan: list[str], seen: list[dict[str, Any]],
            stop: threading.Event) -> None:
    session = requests.Session()
    for code in plan:
        for _ in range(50):  # a request that meets a killed worker or server is sent again
            if stop.is_set():
                return
            try:
                resp = session.post(f"http://127.0.0.1:{server.port}/bids",
                                    json={"uscc": code}, timeout=20)
            except requests.RequestException:
                session = requests.Session()
                time.sleep(0.05)
                continue
            seen.append({"code": code, "status": resp.status_code,
                         "header": resp.headers.get("X-Credit-Check", ""),
                         "body": resp.text[:2000]})
            break


def _decision_ids(item: dict[str, Any]) -> list[str]:
    ids = []
    for part in item["header"].split(";"):
        key, _, value = part.strip().partition("=")
        if key in ("decision", "decisions"):
            ids += value.split(",")
    if not ids and item["status"] == 403:
        ids = list(json.loads(item["body"]).get("decision_ids") or [])
    return ids


@pytest.mark.parametrize("kind", ["gunicorn", "gunicorn-preload", "uvicorn"])
def test_workers_killed_at_random_lose_nothing_and_let_no_listed_applicant_through(
        kind: str, sandbox: SandboxServer, tmp_path: Path) -> None:
    rng = random.Random(kind)
    data_dir = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *filter(None, [
               os.environ.get("PYTHONPATH")])]),
           "CREDIT_CHECK_BASE_URL": sandbox.base_url, "CREDIT_CHECK_API_KEY": sandbox.demo_key,
           "CREDIT_CHECK_DEPARTMENT": "示范市公共资源交易中心",
           "CREDIT_CHECK_DATA_DIR": str(data_dir),
           "CREDIT_CHECK_SERVICE_PUBLIC_KEY": sandbox.public_key,
           "CREDIT_CHECK_SYNC_INTERVAL": "2"}
    env.pop("CREDIT_CHECK_ENCRYPTION_KEY", None)  # cold: the key file is generated
    plan = [DENIED[0] if rng.random() < 0.1 else _clean(rng.randrange(100_000))
            for _ in range(REQUESTS)]
    server = Server(kind, data_dir, env)
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    deadline = time.monotonic() + SECONDS
    server.start()
    clients = [threading.Thread(target=_client, args=(server, plan[k::CLIENTS], seen, stop))
               for k in range(CLIENTS)]
    kills = 0
    try:
        for c in clients:
            c.start()
        crashed = False
        # Kills are paced by progress, not time: a fast machine gets as many as a slow one.
        next_kill = rng.randrange(40, 120)
        while any(c.is_alive() for c in clients) and time.monotonic() < deadline:
            time.sleep(0.02)
            if not crashed and len(seen) > REQUESTS // 2:
                server.kill_all()  # the master too; then the host "restarts" it
                crashed = True
                kills += 1
                server.start()
                continue
            if len(seen) < next_kill:
                continue
            next_kill += rng.randrange(60, 140)
            workers = server.workers()
            if workers:
                with contextlib.suppress(ProcessLookupError):  # it may have just exited
                    os.kill(rng.choice(workers), signal.SIGKILL)
                    kills += 1
        stop.set()
        for c in clients:
            c.join(30)
    finally:
        stop.set()
        server.stop()
    assert time.monotonic() < deadline + 60, "the run took too long"
    assert len(seen) >= 1000 and kills >= 5, (len(seen), kills)

    # What a client was told: no 2xx without a decision; no listed applicant through.
    ok = [s for s in seen if 200 <= s["status"] < 300]
    assert all(_decision_ids(s) for s in ok), [s for s in ok if not _decision_ids(s)][:3]
    through = [s for s in ok if s["code"] in DENIED]
    assert through == [], through[:3]
    assert all(s["status"] in (200, 403, 503) for s in seen), Counter(s["status"] for s in seen)

    # Deliver what is left, then every decision a client saw is at the service once.
    flush = subprocess.run([sys.executable, "-m", "credit_check._cli", "outbox", "flush",
                            "--timeout", "60", "--json"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert flush.returncode == 0, flush.stderr
    status = json.loads(flush.stdout)
    assert (status["undecryptable"], status["dead_lettered"], status["pending"]) == (0, 0, 0)
    records: list[dict[str, Any]] = []
    params = {"limit": "10000"}
    while True:  # every record the service received, page by page
        page = requests.get(sandbox.base_url + "/v1/admin/feedback", timeout=60, params=params,
                            headers={"Authorization": f"Bearer {sandbox.admin_key}"}).json()
        records += page["records"]
        if not page["has_more"]:
            break
        params["cursor"] = page["next_cursor"]
    got = Counter(r["decision_id"] for r in records if r["kind"] == "decision")
    decided = [i for s in seen for i in _decision_ids(s)]
    assert decided and [i for i in decided if got[i] != 1] == []
