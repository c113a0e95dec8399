"""Snapshot prefix set at scale: bytes per entry, full load from disk, a 10k-change delta,
and lookup p50 growth (DESIGN §7, issue targets: ≤ 2.1 B/entry and ≤ 3 s load at 10 M,
≤ 100 ms per 10k delta, lookup p50 growth ≤ 2× from 10 k to 10 M).

    .venv/bin/python bench/bench_snapshot.py [--sizes 10000,1000000,10000000]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from array import array
from pathlib import Path

from credit_check._crypto import (
    Signer,
    b64e,
    id_prefix,
    load_public_key,
    pack_prefixes,
    prefix_checksum,
    snapshot_message,
)
from credit_check._snapshot import SnapshotState


def random_prefixes(n: int, rng: random.Random) -> list[int]:
    raw = array("I")
    raw.frombytes(rng.randbytes(4 * n + 4 * (n // 50 + 16)))
    values = sorted(set(raw))
    while len(values) < n:  # collisions in the draw: top up
        values = sorted(set(values) | {rng.getrandbits(32) for _ in range(n - len(values))})
    return values[:n]


def p50_lookup_ns(state: SnapshotState, ids: list[str], rounds: int = 5) -> float:
    samples = []
    contains = state.contains
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for i in ids:
            contains(i)
        samples.append((time.perf_counter_ns() - start) / len(ids))
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000,10000000")
    args = parser.parse_args()
    rng = random.Random(7)
    signer = Signer.generate()
    key = load_public_key(signer.public_key)
    ids = [f"9111000060003{n:05d}" for n in range(20000)]  # probes: a string id as check() sees it
    print(f"{'entries':>10} {'B/entry':>8} {'build s':>8} {'save s':>7} {'load s':>7} "
          f"{'delta10k ms':>12} {'lookup p50 ns':>14}")
    base_p50 = None
    for n in (int(s) for s in args.sizes.split(",")):
        values = random_prefixes(n, rng)
        data = pack_prefixes(values)
        checksum = prefix_checksum(data)
        body = {"version": 1, "full": True, "prefixes": b64e(data), "checksum": checksum,
                "signature": signer.sign(snapshot_message(1, checksum))}
        t0 = time.perf_counter()
        state = SnapshotState.empty().apply(body, key)
        build = time.perf_counter() - t0
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "snapshot.bin"
            t0 = time.perf_counter()
            state.save(path)
            save = time.perf_counter() - t0
            t0 = time.perf_counter()
            loaded = SnapshotState.load(path, key)
            load = time.perf_counter() - t0
            assert len(loaded) == n
        # A delta of 10k changes: 5k removed, 5k added (or fewer for a small set).
        k = min(5000, n // 2)
        removed = set(rng.sample(values, k))
        present = set(values)
        added: set[int] = set()
        while len(added) < k:
            p = rng.getrandbits(32)
            if p not in present:
                added.add(p)
        new_set = (present | added) - removed
        new_checksum = prefix_checksum(pack_prefixes(new_set))
        delta = {"version": 2, "since": 1, "full": False, "added": b64e(pack_prefixes(added)),
                 "removed": b64e(pack_prefixes(removed)), "checksum": new_checksum,
                 "signature": signer.sign(snapshot_message(2, new_checksum))}
        # The bench's own 10 M-element lists and sets would make every cyclic GC pass walk
        # them; a checker process holds none, so move them out of the collector's sight.
        gc.collect()
        gc.freeze()
        t0 = time.perf_counter()
        state2 = state.apply(delta, key)
        delta_ms = (time.perf_counter() - t0) * 1000
        assert len(state2) == len(new_set)
        # Make about 1 % of probes members so both paths are timed.
        for i in ids[::100]:
            values.append(id_prefix(i))
        p50 = p50_lookup_ns(state2, ids)
        base_p50 = base_p50 or p50
        print(f"{n:>10,} {state.prefixes.nbytes / n:>8.3f} {build:>8.2f} {save:>7.2f} "
              f"{load:>7.2f} {delta_ms:>12.1f} {p50:>14.0f}")
        del values, data, body, state, state2, loaded, present, removed, added, new_set
        gc.unfreeze()
    print(f"lookup p50 growth from the smallest to the largest size: "
          f"{p50 / base_p50:.2f}x (target ≤ 2x)")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
