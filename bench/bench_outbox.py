"""Feedback outbox benchmark, by stage: the durable record write (journal; 1 and 4 threads,
and 4 processes), the sender's import (journal → store: record, HMAC, row) and its
claim/acknowledge, each in records/s and µs per record, side by side in one run.
End-to-end delivery to the sandbox is measured by ``bench_checker.py``.

    .venv/bin/python bench/bench_outbox.py [--records 50000]

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _outbox_child import make_decision, make_outbox

from credit_check._models import Decision


def _decisions(n: int) -> list[Decision]:
    return [make_decision(i, person=i % 2 == 0, matched=i % 10 == 0) for i in range(n)]


def write(decisions: list[Decision], threads: int) -> tuple[float, float, float]:
    """records/s, write p50 and p99 (µs) with ``threads`` threads sharing one outbox."""
    with tempfile.TemporaryDirectory() as tmp, make_outbox(Path(tmp)) as outbox:
        latencies: list[list[float]] = [[] for _ in range(threads)]
        chunks = [decisions[i::threads] for i in range(threads)]

        def work(k: int) -> None:
            lat, clock = latencies[k], time.perf_counter
            for d in chunks[k]:
                t0 = clock()
                outbox.write_decision(d, "财政局")
                lat.append(clock() - t0)

        workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
    flat = sorted(x for lat in latencies for x in lat)
    return (len(decisions) / elapsed, statistics.median(flat) * 1e6,
            flat[int(len(flat) * 0.99)] * 1e6)


def _child(directory: str, n: int, start: float) -> None:
    decisions = _decisions(n)
    outbox = make_outbox(Path(directory))
    while time.time() < start:
        time.sleep(0.001)
    for d in decisions:
        outbox.write_decision(d, "财政局")
    outbox.close(0.0)


def write_processes(n: int, processes: int) -> float:
    """records/s of ``processes`` processes writing to one data directory at once."""
    with tempfile.TemporaryDirectory() as tmp:
        ctx = multiprocessing.get_context("spawn")
        start = time.time() + 2.0
        procs = [ctx.Process(target=_child, args=(tmp, n // processes, start))
                 for _ in range(processes)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        return n / (time.time() - start)


def import_and_claim(decisions: list[Decision]) -> tuple[float, float]:
    """µs per record to import a journal into the store, and to claim + acknowledge."""
    from _outbox_child import import_new

    with tempfile.TemporaryDirectory() as tmp, make_outbox(Path(tmp)) as outbox:
        for d in decisions:
            outbox.write_decision(d, "财政局")
        t0 = time.perf_counter()
        assert import_new(outbox) == len(decisions)
        imported = (time.perf_counter() - t0) / len(decisions) * 1e6
        t0 = time.perf_counter()
        while batch := outbox.store.claim(500, lease=30, owner="bench"):
            outbox.store.acknowledge([c.seq for c in batch])
        claimed = (time.perf_counter() - t0) / len(decisions) * 1e6
    return imported, claimed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=50_000)
    args = parser.parse_args()
    decisions = _decisions(args.records)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"{args.records:,} decision records (half of persons, 10 % with a match)")
    for threads in (1, 4):
        rate, p50, p99 = write(decisions, threads)
        print(f"write (journal), {threads} thread(s):   {rate:>9,.0f} records/s   "
              f"p50 {p50:.1f} µs   p99 {p99:.1f} µs")
    print(f"write (journal), 4 processes:  {write_processes(args.records, 4):>9,.0f} "
          "records/s")
    imported, claimed = import_and_claim(decisions)
    print(f"sender: import {imported:.1f} µs/record, claim + acknowledge {claimed:.1f} "
          f"µs/record  → {1e6 / (imported + claimed):,.0f} records/s before HTTP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
