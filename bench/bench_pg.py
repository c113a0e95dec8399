"""The list service on PostgreSQL beside SQLite, measured in one run (issue 15): the store's
write of an import of N entries, the full snapshot build (a new instance reading the set
from the database, then the signed full set), lookup latency over loopback with one SQLite
instance, one PostgreSQL instance and two PostgreSQL instances on one database, and
feedback intake into the store in records/s. Each size in ``--sizes`` is run in turn, so
the growth from one size to the next is printed too.

    .venv/bin/python bench/bench_pg.py [--sizes 100000,1000000] [--pg-url postgresql://…]

Without ``--pg-url`` a throwaway PostgreSQL server is started (tests/_postgres.py) with
fsync on, on this machine's disk. The CSV parsing and checking of an import is the same for
both engines and is measured by bench_sandbox.py; here the engines' part is timed alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _postgres import Cluster, find_bindir, free_port

from credit_check._crypto import Signer
from credit_check._models import Catalog, ListEntry
from credit_check._server._demo import demo_catalog, make_id_number, make_uscc
from credit_check._server._personal import PersonalData
from credit_check._server._postgres import PostgresStore
from credit_check._server._sqlite import SQLiteStore
from credit_check._server._store import Intake, Store, entry_row

LOOKUPS = 2000
CLIENTS = 2
FEEDBACK = 20_000
ADMIN = "cc_admin_bench_pg_0123456789"


def make_rows(n: int, rng: random.Random) -> tuple[list[Any], list[str]]:
    """N entries: nine in ten of organisations, one in ten of natural persons."""
    rows, ids = [], []
    for i in range(n):
        person = i % 10 == 9
        sid = make_id_number(rng) if person else make_uscc(rng)
        ids.append(sid)
        rows.append(entry_row(ListEntry.model_validate({
            "entry_id": f"b{i}", "list_code": "tax.major_violation", "list_kind": "black",
            "subject_id": sid, "subject_kind": "person" if person else "organization",
            "name": f"示例{i}", "issuing_department": "某税务局", "basis_document": f"税罚{i}号",
            "effective_from": "2025-01-01", "status": "active"})))
    return rows, ids


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    result = work()
    return time.perf_counter() - t, result


def quantiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return q[49] * 1000, q[98] * 1000


class Serve:
    """A ``credit-check serve`` process."""

    def __init__(self, db: str, keys: tuple[Path, Path]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "CREDIT_CHECK_ADMIN_KEY": ADMIN}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "credit_check._cli", "serve", "--db", db, "--port",
             str(self.port), "--signing-key", str(keys[0]), "--data-key", str(keys[1]),
             "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
        assert self.proc.stdout is not None
        self.key = json.loads(self.proc.stdout.readline())["demo_api_key"]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                requests.get(self.url + "/v1/capabilities", timeout=5)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("the instance did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def lookups(instances: list[Serve], ids: list[str], rng: random.Random) -> list[float]:
    """Latencies of LOOKUPS single lookups by CLIENTS threads, client i asking instance
    i mod len(instances), each on its own keep-alive connection."""
    chosen = rng.sample(ids, min(LOOKUPS, len(ids)))
    parts = [chosen[i::CLIENTS] for i in range(CLIENTS)]
    out: list[list[float]] = [[] for _ in range(CLIENTS)]

    def client(i: int) -> None:
        target = instances[i % len(instances)]
        session = requests.Session()
        headers = {"Authorization": f"Bearer {target.key}"}
        for sid in parts[i][:20]:  # warm up the connection and the instance
            session.get(f"{target.url}/v1/subjects/{sid}", headers=headers, timeout=30)
        for sid in parts[i]:
            t = time.perf_counter()
            session.get(f"{target.url}/v1/subjects/{sid}", headers=headers,
                        timeout=30).raise_for_status()
            out[i].append(time.perf_counter() - t)
        session.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [v for part in out for v in part]


def intake(store: Store, size: int) -> float:
    records = [Intake(f"fb-{size}-{i}", "财政局", "decision", "procurement", "allow", 0, 0,
                      "2026-03-01", b'{"record_id":"fb-%d"}' % i) for i in range(FEEDBACK)]
    took, _ = timed(lambda: [store.add_feedback(records[i : i + 500])
                             for i in range(0, len(records), 500)])
    return FEEDBACK / took


def run_size(n: int, pg_url: str, tmp: Path, keys: tuple[Path, Path],
             signer: Signer, personal: PersonalData) -> dict[str, float]:
    rng = random.Random(n)
    took, (rows, ids) = timed(lambda: make_rows(n, rng))
    print(f"\n{n:,} entries (rows made in {took:.1f} s)", flush=True)
    figures: dict[str, float] = {}
    sqlite_db = tmp / f"s{n}.db"
    opened: dict[str, Callable[[], Store]] = {
        "sqlite": lambda: SQLiteStore(sqlite_db, signer, personal),
        "postgres": lambda: PostgresStore(pg_url, signer, personal),
    }
    for engine, open_store in opened.items():
        store = open_store()
        store.put_catalog(Catalog.load(demo_catalog()), if_none=True)
        took, _ = timed(lambda store=store, rows=rows: store.upsert(rows))
        figures[f"{engine} import s"] = took
        figures[f"{engine} intake rec/s"] = intake(store, n)
        store.close()
        took, fresh = timed(open_store)
        snap, state = timed(fresh.snapshot)
        figures[f"{engine} open s"] = took
        figures[f"{engine} snapshot s"] = snap
        print(f"  {engine:8}: import write {figures[f'{engine} import s']:.1f} s "
              f"({n / figures[f'{engine} import s']:,.0f} entries/s); new instance reads "
              f"the set {took:.1f} s + signed full set {snap:.2f} s ({state.count:,} "
              f"prefixes); feedback intake {figures[f'{engine} intake rec/s']:,.0f} "
              "records/s", flush=True)
        fresh.close()

    one_sqlite = [Serve(str(sqlite_db), keys)]
    try:
        p50, p99 = quantiles(lookups(one_sqlite, ids, rng))
    finally:
        one_sqlite[0].stop()
    figures["sqlite x1 p50"], figures["sqlite x1 p99"] = p50, p99
    for count in (1, 2):
        pgs = [Serve(pg_url, keys) for _ in range(count)]
        try:
            p50, p99 = quantiles(lookups(pgs, ids, rng))
        finally:
            for s in pgs:
                s.stop()
        figures[f"postgres x{count} p50"], figures[f"postgres x{count} p99"] = p50, p99
    print(f"  lookups over loopback ({CLIENTS} clients, {LOOKUPS:,} lookups): "
          f"SQLite x1 p50 {figures['sqlite x1 p50']:.2f} ms p99 {figures['sqlite x1 p99']:.2f}"
          f" ms; PostgreSQL x1 p50 {figures['postgres x1 p50']:.2f} ms p99 "
          f"{figures['postgres x1 p99']:.2f} ms; PostgreSQL x2 p50 "
          f"{figures['postgres x2 p50']:.2f} ms p99 {figures['postgres x2 p99']:.2f} ms "
          f"(x2 p50 / SQLite x1 p50 = "
          f"{figures['postgres x2 p50'] / figures['sqlite x1 p50']:.2f})", flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000",
                        help="comma-separated entry counts, e.g. 1000000,10000000")
    parser.add_argument("--pg-url", help="an empty PostgreSQL database to use")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    cluster = None
    if not args.pg_url:
        bindir = find_bindir()
        if bindir is None:
            print("no PostgreSQL server binaries; give --pg-url", file=sys.stderr)
            return 2
        cluster = Cluster(bindir, durable=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp_text:
            tmp = Path(tmp_text)
            signer, data_key = Signer.generate(), os.urandom(32)
            keys = (tmp / "signing.key", tmp / "data.key")
            keys[0].write_bytes(signer.private_bytes())
            keys[1].write_bytes(data_key)
            results = {}
            for n in sizes:
                url = cluster.create_database("bench") if cluster else args.pg_url
                results[n] = run_size(n, url, tmp, keys, signer, PersonalData(data_key))
            if len(sizes) > 1:
                first, last = results[sizes[0]], results[sizes[-1]]
                print(f"\ngrowth {sizes[0]:,} -> {sizes[-1]:,} entries "
                      f"(x{sizes[-1] / sizes[0]:g}):")
                for name in first:
                    print(f"  {name:24} x{last[name] / first[name]:.2f}")
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
