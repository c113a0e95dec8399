"""Sandbox list service at scale (issue 3): CSV import of N entries (its phases, as the
service logs them, and the latency of lookups made while it runs), single and batch-of-100
lookup latency over loopback, full snapshot build time and transfer size, and the delta size
after 1,000 changes.

    .venv/bin/python bench/bench_sandbox.py [--entries 1000000]
"""

from __future__ import annotations

import argparse
import io
import logging
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE, make_uscc

COLUMNS = ["entry_id", "list_code", "list_kind", "subject_id", "subject_kind", "name",
           "issuing_department", "basis_document", "reason", "listed_on", "effective_from",
           "effective_until", "status", "legal_representative_id"]


LOOKUP_PAUSE = 0.05  # seconds between an answer and the next lookup during the import


def make_csv(n: int, rng: random.Random) -> tuple[bytes, list[str]]:
    out = io.StringIO()
    out.write(",".join(COLUMNS) + "\n")
    ids = []
    for i in range(n):
        sid = make_uscc(rng)
        ids.append(sid)
        out.write(f"b{i},tax.major_violation,black,{sid},organization,示例{i},某税务局,"
                  f"税罚{i}号,,2025-01-01,2025-01-01,,active,\n")
    return out.getvalue().encode(), ids


def percentiles(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {q[49] * 1000:.2f} ms, p99 {q[98] * 1000:.2f} ms"


class _Phases(logging.Handler):
    """Keeps the sandbox's log line that times the phases of an import."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("import of"):
            self.lines.append(record.getMessage())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        server = SandboxServer(Path(tmp) / "sandbox.db", demo=True, port=0)
        server.start()
        try:
            return run(server, args.entries, rng)
        finally:
            server.stop()


def run(server: SandboxServer, n: int, rng: random.Random) -> int:
    session = requests.Session()
    dept = {"Authorization": f"Bearer {server.demo_key}"}
    admin = {"Authorization": f"Bearer {server.admin_key}", "Content-Type": "text/csv"}
    body, ids = make_csv(n, rng)
    print(f"CSV of {n:,} entries: {len(body) / 1e6:.1f} MB", flush=True)

    # (start, latency) of every lookup; failures as (start, error)
    looks: list[tuple[float, float]] = []
    failures: list[tuple[float, str]] = []
    stop = threading.Event()

    def look_meanwhile() -> None:
        s = requests.Session()
        url = f"{server.base_url}/v1/subjects/{SHOWCASE['court_defaulter_org']}"
        while not stop.is_set():
            t = time.perf_counter()
            try:
                r = s.get(url, headers=dept, timeout=30)
                r.raise_for_status()
            except requests.RequestException as exc:
                failures.append((t, type(exc).__name__))
            else:
                looks.append((t, time.perf_counter() - t))
            # As before the lookups were timed: the lookup client runs in this process and
            # takes its share of the GIL, so a faster pace would slow the import measured.
            time.sleep(LOOKUP_PAUSE)

    phases = _Phases()
    sandbox_log = logging.getLogger("credit_check.sandbox")
    sandbox_log.addHandler(phases)
    sandbox_log.setLevel(logging.INFO)
    looker = threading.Thread(target=look_meanwhile)
    looker.start()
    time.sleep(0.5)  # lookups under way before the import starts
    t0 = time.perf_counter()
    r = session.post(f"{server.base_url}/v1/admin/entries", data=body, headers=admin,
                     timeout=600)
    elapsed = time.perf_counter() - t0
    stop.set()
    looker.join()
    during = [latency for start, latency in looks if t0 <= start < t0 + elapsed]
    failed = [error for start, error in failures if t0 <= start < t0 + elapsed]
    sandbox_log.removeHandler(phases)
    r.raise_for_status()
    print(f"import {n:,} entries from CSV: {elapsed:.1f} s ({r.json()})", flush=True)
    for line in phases.lines:
        print(f"  sandbox log: {line}")
    if len(during) >= 2:
        q = statistics.quantiles(during, n=100, method="inclusive")
        print(f"  {len(during)} lookups answered during the import (each "
              f"{LOOKUP_PAUSE * 1000:.0f} ms after the last answer): "
              f"p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms, "
              f"max {max(during) * 1000:.0f} ms; {len(failed)} failed"
              + (f" ({', '.join(sorted(set(failed)))})" if failed else ""), flush=True)
    else:
        print(f"  {len(during)} lookups answered during the import; {len(failed)} failed")

    single = []
    for code in rng.sample(ids, 2000):
        t = time.perf_counter()
        session.get(f"{server.base_url}/v1/subjects/{code}", headers=dept, timeout=30)
        single.append(time.perf_counter() - t)
    print(f"single lookup over loopback ({n:,} entries): {percentiles(single)}")
    batch = []
    for _ in range(200):
        chunk = rng.sample(ids, 100)
        t = time.perf_counter()
        session.post(f"{server.base_url}/v1/subjects:batch", json={"ids": chunk},
                     headers=dept, timeout=30).raise_for_status()
        batch.append(time.perf_counter() - t)
    print(f"batch of 100 over loopback: {percentiles(batch)}")

    t = time.perf_counter()
    full = session.get(f"{server.base_url}/v1/snapshot", headers=dept, timeout=120)
    took = time.perf_counter() - t
    snap = full.json()
    print(f"full snapshot: {snap['count']:,} prefixes, build+transfer {took:.2f} s, "
          f"{len(full.content) / 1e6:.2f} MB JSON", flush=True)
    version = snap["version"]
    changes = [{"entry_id": f"b{i}", "status": "repaired"} for i in rng.sample(range(n), 1000)]
    for c in changes:
        session.post(f"{server.base_url}/v1/admin/entries/{c['entry_id']}/status",
                     json={"status": c["status"]}, headers={"Authorization": admin[
                         "Authorization"]}, timeout=30).raise_for_status()
    delta = session.get(f"{server.base_url}/v1/snapshot", params={"since": version},
                        headers=dept, timeout=60)
    delta.raise_for_status()
    d = delta.json()
    print(f"delta after 1,000 changes: {len(delta.content) / 1e3:.1f} kB JSON "
          f"(version {d['since']} -> {d['version']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
