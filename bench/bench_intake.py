"""Feedback intake of the sandbox, records per second on one thread, side by side in one
run: the wave-1 path (parse the body, validate each record, encode it canonically again to
check its HMAC) and today's (HMAC over each record's text as sent, cut out with
raw_decode), each alone and today's also with the store's sealed, de-duplicated insert.

    .venv/bin/python bench/bench_intake.py [--batches 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "server"))

from _sandbox_app_support import feedback_records

from credit_check._crypto import Signer, canonical_json, feedback_key
from credit_check._models import FeedbackRecord
from credit_check._server._http import _finite_float, _no_constant
from credit_check._server._intake import take_feedback
from credit_check._server._personal import PersonalData
from credit_check._server._sqlite import SQLiteStore
from credit_check._server._store import ApiKey

API_KEY = "cc_bench_intake"
KEY = ApiKey("k_bench", "财政局", feedback_key(API_KEY), False)
BATCH = 500


def body_as_sent(records: list[dict[str, Any]]) -> bytes:
    texts = [canonical_json({k: v for k, v in r.items() if k != "hmac"})[:-1]
             + b',"hmac":"' + r["hmac"].encode() + b'"}' for r in records]
    return b'{"records":[' + b",".join(texts) + b"]}"


def wave1_intake(raw: bytes) -> int:
    """The wave-1 path, without its store: what each record cost before."""
    # as wave 1 read the body: json.loads with the strict number hooks, one call
    records = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)["records"]
    good = 0
    for record in records:
        FeedbackRecord.model_validate(record)
        body = canonical_json({k: v for k, v in record.items() if k != "hmac"})
        expected = hmac.new(KEY.feedback_key, body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected.encode(), record["hmac"].encode()):
            good += 1
    return good


def new_intake(raw: bytes) -> int:
    good, _ = take_feedback(KEY, raw)
    return len(good)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    template = feedback_records(API_KEY, BATCH)
    bodies = []
    for b in range(args.batches):
        batch = []
        for i, r in enumerate(template):
            r = dict(r, record_id=f"{b:05d}{i:05d}{os.urandom(6).hex()}")
            r["hmac"] = hmac.new(KEY.feedback_key, canonical_json(
                {k: v for k, v in r.items() if k != "hmac"}), hashlib.sha256).hexdigest()
            batch.append(r)
        bodies.append(body_as_sent(batch))
    n = args.batches * BATCH
    print(f"{args.batches} bodies of {BATCH} records ({len(bodies[0]) / 1e3:.0f} kB each), "
          f"{args.rounds} rounds, best round shown (CPU time of one thread)", flush=True)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-intake-") as tmp:
        for round_ in range(args.rounds):
            store = SQLiteStore(Path(tmp) / f"s{round_}.db", Signer.generate(),
                                PersonalData(os.urandom(32)))
            paths: dict[str, Callable[[bytes], int]] = {
                "wave-1 intake (no store)": wave1_intake,
                "intake (no store)": new_intake,
                "intake + sealed SQLite insert": lambda raw: len(store.add_feedback(
                    take_feedback(KEY, raw)[0])[0])}
            spent = dict.fromkeys(paths, 0.0)
            try:
                # Interleaved body by body, so that a busy neighbour slows every path alike;
                # CPU time of this process, as the figure is per core.
                for body in bodies:
                    for name, run in paths.items():
                        t = time.process_time()
                        done = run(body)
                        spent[name] += time.process_time() - t
                        assert done == BATCH, (name, done)
            finally:
                store.close()
            for name, took in spent.items():
                best[name] = max(best.get(name, 0.0), n / took)
    base = best["wave-1 intake (no store)"]
    for name, rate in best.items():
        print(f"  {name:32s} {rate:10,.0f} records/s  ({rate / base:.2f} x wave 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
