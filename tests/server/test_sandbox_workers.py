"""Several service processes on one database (issue 12, edge 12): a real
``uvicorn --factory credit_check._server:app_from_env --workers 3`` started cold serves one
snapshot version and one catalogue within a second of an admin change made through any
worker, and no worker dies; processes started at the same instant all get the one signing
key and data key, and the demo data is loaded once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from _sandbox_app_support import entry, org_id

from credit_check._crypto import Signer
from credit_check._server._demo import demo_catalog
from credit_check._server._runner import derived_key

WORKERS = 3
ADMIN_KEY = "cc_admin_workers_test_0123456789abcdef"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fresh_get(url: str, key: str) -> requests.Response:
    """A request on a new connection (so it may reach any worker)."""
    return requests.get(url, headers={"Authorization": f"Bearer {key}",
                                      "Connection": "close"}, timeout=10)


def wait_for_workers(proc: subprocess.Popen[str], log: Path, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        text = log.read_text()
        if text.count("Application startup complete") >= WORKERS:
            try:
                if fresh_get(f"{url}/v1/capabilities", ADMIN_KEY).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"the workers did not start:\n{log.read_text()}")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_three_uvicorn_workers_answer_as_one_service(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "uvicorn.log"
    env = {**os.environ, "CREDIT_CHECK_SANDBOX_DB": str(db), "CREDIT_CHECK_SANDBOX_DEMO": "1",
           "CREDIT_CHECK_ADMIN_KEY": ADMIN_KEY}
    env.pop("CREDIT_CHECK_SANDBOX_DATA_KEY", None)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "credit_check._server:app_from_env",
             "--workers", str(WORKERS), "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "info"], stdout=out, stderr=subprocess.STDOUT, text=True, env=env,
            cwd=tmp_path)
    try:
        wait_for_workers(proc, log, url)
        demo_key = derived_key(Signer.from_bytes(
            (tmp_path / "sandbox.db.signing-key").read_bytes()), "demo-key")
        versions = {fresh_get(f"{url}/v1/snapshot", demo_key).json()["version"]
                    for _ in range(12)}
        assert len(versions) == 1, versions
        before = versions.pop()

        # An admin change through one connection...
        admin = {"Authorization": f"Bearer {ADMIN_KEY}", "Connection": "close"}
        resp = requests.post(f"{url}/v1/admin/entries", headers=admin, timeout=30,
                             json={"entries": [entry("w-1", org_id(8801))]})
        assert resp.status_code == 200, resp.text
        changed_at = time.monotonic()
        version = resp.json()["version"]
        assert version == before + 1
        seen = _poll(url, demo_key, changed_at, lambda b: b["version"])
        assert all(v == version for t, v in seen if t >= 1.0), seen
        assert len([t for t, _ in seen if t >= 1.0]) >= 10

        # ...and a catalogue change, seen with its serial by every worker.
        resp = requests.put(f"{url}/v1/admin/catalog", headers=admin, json=demo_catalog(),
                            timeout=30)
        assert resp.status_code == 200, resp.text
        serial = resp.json()["serial"]
        changed_at = time.monotonic()
        seen_serials = _poll(url, demo_key, changed_at, lambda b: b["catalog_serial"])
        assert all(s == serial for t, s in seen_serials if t >= 1.0), seen_serials
        for _ in range(8):
            body = fresh_get(f"{url}/v1/catalog", demo_key).json()
            assert body["serial"] == serial
        # A delta asked of any worker is the same delta.
        deltas = {json.dumps({k: v for k, v in fresh_get(
            f"{url}/v1/snapshot?since={before}", demo_key).json().items()
            if k in {"added", "removed", "checksum", "version"}}, sort_keys=True)
            for _ in range(8)}
        assert len(deltas) <= 1  # 410 answers after the catalogue rebuild have no such keys
    finally:
        stop(proc)
    text = log.read_text()
    assert text.count("Started server process") == WORKERS, text
    for bad in ("died", "Traceback", "FileExistsError", "database is locked"):
        assert bad not in text, text


def _poll(url: str, key: str, since: float, pick: Any) -> list[tuple[float, Any]]:
    """Snapshot answers for two seconds after ``since``: (seconds after, picked value)."""
    seen = []
    while (elapsed := time.monotonic() - since) < 2.0:
        resp = fresh_get(f"{url}/v1/snapshot", key)
        assert resp.status_code == 200, resp.text
        seen.append((elapsed, pick(resp.json())))
    return seen


CHILD = """
import json, sys, time
from pathlib import Path
from credit_check._server._runner import open_sandbox
db, go = Path(sys.argv[1]), Path(sys.argv[2])
deadline = time.monotonic() + 60
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("no go")
    time.sleep(0.001)
store, signer, admin, demo = open_sandbox(db, demo=True)
print(json.dumps({"public": signer.public_key, "version": store.refresh().version,
                  "entries": store.stats()["entries"]}))
store.close()
"""


def test_processes_starting_together_share_one_key_and_load_the_demo_once(
    tmp_path: Path,
) -> None:
    db, go = tmp_path / "s.db", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(db), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=tmp_path, env={**os.environ})
             for _ in range(8)]
    time.sleep(1.0)  # every child waiting at the barrier
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert len({r["public"] for r in results}) == 1
    assert len({r["entries"] for r in results}) == 1 and results[0]["entries"] > 1000
    # Made as version 1, the catalogue version 2, the demo version 3: each once.
    assert max(r["version"] for r in results) == 3
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in names if n.endswith(".tmp")] == []
    for key_file in ("s.db.signing-key", "s.db.data-key"):
        assert ((tmp_path / key_file).stat().st_mode & 0o777) == 0o600
