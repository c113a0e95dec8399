"""Feedback outbox benchmark: durable enqueue throughput (1 and 4 threads), the latency one
``add`` adds to a check, and delivery throughput to the sandbox over loopback.

    .venv/bin/python bench/bench_outbox.py [--records 20000] [--deliver 50000] [--json]

Each ``add`` commits (WAL, synchronous=NORMAL) before it returns. A thread checkpoints once
a second meanwhile, as the sender does. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _outbox_child import make_decision, make_outbox

from credit_check._feedback import decision_record
from credit_check._models import FeedbackRecord
from credit_check._outbox import Outbox


def _records(n: int) -> list[FeedbackRecord]:
    return [decision_record(make_decision(i, person=i % 2 == 0), department="财政局")
            for i in range(n)]


class _Checkpointer:
    """Checkpoints once a second, as the sender thread does."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._outbox.checkpoint()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def enqueue(records: list[FeedbackRecord], threads: int, synchronous: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, \
            make_outbox(Path(tmp) / "outbox.db", synchronous=synchronous) as outbox:
        checkpointer = _Checkpointer(outbox)
        latencies: list[list[float]] = [[] for _ in range(threads)]
        chunks = [records[i::threads] for i in range(threads)]

        def work(k: int) -> None:
            lat = latencies[k]
            for r in chunks[k]:
                t0 = time.perf_counter()
                outbox.add(r)
                lat.append(time.perf_counter() - t0)

        workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
        checkpointer.stop()
    flat = sorted(x for lat in latencies for x in lat)
    return {
        "threads": threads, "synchronous": synchronous, "records": len(records),
        "records_per_s": round(len(records) / elapsed),
        "add_p50_us": round(statistics.median(flat) * 1e6),
        "add_p99_us": round(flat[int(len(flat) * 0.99)] * 1e6),
    }


def deliver(n: int, batch_size: int) -> dict[str, Any]:
    from credit_check._crypto import feedback_key
    from credit_check._sender import OutboxSender
    from credit_check._server import SandboxServer  # type: ignore[attr-defined,unused-ignore]
    from credit_check._transport import Transport

    with tempfile.TemporaryDirectory() as tmp:
        server = SandboxServer(db_path=str(Path(tmp) / "sandbox.db"), demo=True, port=0)
        server.start()
        try:
            transport = Transport(server.base_url, server.demo_key, read_timeout=30.0)
            with make_outbox(Path(tmp) / "outbox.db", api_key=server.demo_key) as outbox:
                assert outbox._hmac_key == feedback_key(server.demo_key)
                for r in _records(n):
                    outbox.add(r)
                sender = OutboxSender(outbox, transport, batch_size=batch_size)
                start = time.perf_counter()
                done = sender.flush(600.0)
                elapsed = time.perf_counter() - start
                sender.close(0.0)
                status = outbox.status()
            transport.close()
        finally:
            server.stop()
    return {"records": n, "batch_size": batch_size, "all_delivered": done,
            "delivered": status.delivered, "records_per_s": round(n / elapsed),
            "seconds": round(elapsed, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--deliver", type=int, default=50_000, help="0 to skip delivery")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    records = _records(args.records)
    results: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count(),
                               "enqueue": []}
    for threads, sync in ((1, "normal"), (4, "normal"), (1, "full")):
        res = enqueue(records if sync == "normal" else records[:2000], threads, sync)
        results["enqueue"].append(res)
        if not args.json:
            print(f"enqueue  threads={threads} synchronous={sync:6}  "
                  f"{res['records_per_s']:>7} records/s  add p50 {res['add_p50_us']} µs  "
                  f"p99 {res['add_p99_us']} µs")
    if args.deliver:
        res = deliver(args.deliver, args.batch_size)
        results["deliver"] = res
        if not args.json:
            print(f"deliver  {res['records']} records, batch {res['batch_size']}: "
                  f"{res['records_per_s']} records/s ({res['seconds']} s), "
                  f"all delivered: {res['all_delivered']}")
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
