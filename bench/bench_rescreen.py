"""Re-screening's local match step at scale (issue target: 100,000 watched subjects against
a 10,000-change delta matched in ≤ 1 s): which watched decisions a sync touched.

The step as the follower runs it: read the open watches from the lifecycle store
(``LifecycleStore.open_watches``, SQLite in the data directory), then test each watch's
prefix against the delta's touched prefixes (``_rescreen.match``). Printed beside it, in
the same run: the store read alone (the floor), and a full re-screen's match (every watch
against a 1,000,000-prefix snapshot, what a follower does when the changes since the last
re-screen are not known to it). Only the matched watches are then looked up, in batches.

    .venv/bin/python bench/bench_rescreen.py [--watches 100000] [--delta 10000] [--hits 100]
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from credit_check._crypto import FieldCipher, id_prefix
from credit_check._lifecycle._db import LIFECYCLE_FILE, SQLiteTables
from credit_check._lifecycle._rescreen import match
from credit_check._lifecycle._store import OPEN, LifecycleStore
from credit_check._models import CST
from credit_check._prefixes import PrefixSet


def record(i: int) -> dict[str, Any]:
    """A decision record as the outbox keeps it (an organisation, one case)."""
    return {
        "record_id": f"r{i}", "kind": "decision", "decision_id": f"d{i:08d}",
        "department": "示范市行政审批局",
        "transaction": {"scenario": "licensing", "case_id": f"XK-{i}", "department": None,
                        "region": None, "item_code": None, "operator": None},
        "subject": {"kind": "organization", "id": f"9135{i:014d}", "name": None},
        "matches": [], "measures": [], "outcome": "allow", "degraded": False,
        "catalog_version": "2026.1", "data_version": "7",
        "created_at": dt.datetime(2026, 3, 1, tzinfo=CST).isoformat(), "result": None,
        "note": None, "operator": None, "previous_outcome": None,
    }


def timed(work: Any, repeat: int) -> tuple[float, Any]:
    samples, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watches", type=int, default=100_000)
    parser.add_argument("--delta", type=int, default=10_000)
    parser.add_argument("--hits", type=int, default=100,
                        help="touched prefixes that are watched subjects'")
    parser.add_argument("--snapshot", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    rng = random.Random(16)
    cipher = FieldCipher(base64.b64decode(base64.b64encode(os.urandom(32))))
    with tempfile.TemporaryDirectory() as tmp:
        store = LifecycleStore(SQLiteTables(Path(tmp) / LIFECYCLE_FILE), cipher)
        start = time.perf_counter()
        records = [record(i) for i in range(args.watches)]
        for k in range(0, len(records), 10_000):
            store.add_watches([(r, OPEN, False, 0.0) for r in records[k : k + 10_000]],
                              limit=args.watches + 1)
        filled = time.perf_counter() - start
        watched = [id_prefix(r["subject"]["id"]) for r in records]
        touched = set(rng.sample(watched, args.hits))
        while len(touched) < args.delta:
            touched.add(rng.getrandbits(32))
        listed = sorted(set(rng.sample(watched, args.watches // 20))
                        | {rng.getrandbits(32) for _ in range(args.snapshot)})
        snapshot = PrefixSet.from_packed(b"".join(p.to_bytes(4, "big") for p in listed))

        read, rows = timed(store.open_watches, args.repeat)
        step, (again, _) = timed(lambda: match(store.open_watches(), touched,
                                               snapshot.__contains__), args.repeat)
        full, (every, _) = timed(lambda: match(store.open_watches(), None,
                                               snapshot.__contains__), args.repeat)
        store.tables.close()
    print(f"watch list: {args.watches:,} open watches (filled in {filled:.1f} s), delta of "
          f"{args.delta:,} touched prefixes ({args.hits} of them watched), snapshot of "
          f"{len(snapshot):,} prefixes; median of {args.repeat}")
    print(f"  match step (read + match, a delta)   {step * 1000:8.1f} ms   -> "
          f"{len(again):,} to look up   (target ≤ 1000 ms)")
    print(f"  store read alone (the floor)          {read * 1000:8.1f} ms   "
          f"({len(rows):,} rows)   match/read = {step / read:.2f}")
    print(f"  full re-screen match (no delta known) {full * 1000:8.1f} ms   -> "
          f"{len(every):,} to look up   full/delta = {full / step:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
