"""Snapshot prefix set at scale: bytes per entry, full load from disk, a 10k-change delta,
and lookup p50 growth (DESIGN §7, issue targets: ≤ 2.1 B/entry and ≤ 3 s load at 10 M,
≤ 100 ms per 10k delta, lookup p50 growth ≤ 2× from 10 k to 10 M).

The delta is timed as the sync applies it (``SnapshotState.apply``: signature, decode, apply,
checksum), median of ``--repeat`` runs, and then phase by phase; persisting is the sync's
next step (before the swap) and is shown apart.

    .venv/bin/python bench/bench_snapshot.py [--sizes 10000,1000000,10000000] [--repeat 5]
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
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from credit_check._crypto import (
    Signer,
    b64d,
    b64e,
    id_prefix,
    load_public_key,
    pack_prefixes,
    prefix_checksum,
    snapshot_message,
)
from credit_check._prefixes import unpack
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


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


class Row(NamedTuple):
    n: int
    bytes_per_entry: float
    build_s: float
    save_s: float
    load_s: float
    delta_ms: float
    lookup_p50_ns: float
    decode_ms: float
    apply_ms: float
    checksum_ms: float
    persist_ms: float


def measure(size: int, rng: random.Random, signer: Signer, ids: list[str], repeat: int) -> Row:
    key = load_public_key(signer.public_key)
    members = {id_prefix(i) for i in ids[::100]}  # about 1 % of probes listed: both paths timed
    present = members | set(random_prefixes(size, rng)[: size - len(members)])
    while len(present) < size:
        present.add(rng.getrandbits(32))
    n = len(present)
    data = pack_prefixes(present)
    checksum = prefix_checksum(data)
    body = {"version": 1, "full": True, "prefixes": b64e(data), "checksum": checksum,
            "signature": signer.sign(snapshot_message(1, checksum))}
    t0 = time.perf_counter()
    state = SnapshotState.empty().apply(body, key)
    build = time.perf_counter() - t0
    # A delta of 10k changes: 5k removed, 5k added (or fewer for a small set).
    k = min(5000, n // 2)
    removed = set(rng.sample(sorted(present - members), k))
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
    n_new = len(new_set)
    # The bench's own 10 M-element sets would make every cyclic GC pass walk them (and
    # fragment the heap); a checker process holds none.
    del data, body, present, removed, added, new_set
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "snapshot.bin"
        t0 = time.perf_counter()
        state.save(path)
        save = time.perf_counter() - t0
        t0 = time.perf_counter()
        loaded = SnapshotState.load(path, key)
        load = time.perf_counter() - t0
        assert len(loaded) == n
        del loaded
        delta_ms = median_ms(lambda: state.apply(delta, key), repeat)
        state2 = state.apply(delta, key)
        assert len(state2) == n_new
        # The same work phase by phase, as SnapshotState.apply and Syncer._install do it.
        old, new = state.prefixes, state2.prefixes
        added_b64, removed_b64 = str(delta["added"]), str(delta["removed"])
        decode = median_ms(lambda: (unpack(b64d(added_b64)), unpack(b64d(removed_b64))), repeat)
        plus, minus = unpack(b64d(added_b64)), unpack(b64d(removed_b64))
        apply = median_ms(lambda: old.apply_delta(plus, minus), repeat)
        check = median_ms(new.checksum, repeat)
        persist = median_ms(lambda: state2.save(path), repeat)
    p50 = p50_lookup_ns(state2, ids)
    return Row(n, state.prefixes.nbytes / n, build, save, load, delta_ms, p50,
               decode, apply, check, persist)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000,10000000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(7)
    signer = Signer.generate()
    ids = [f"9111000060003{n:05d}" for n in range(20000)]  # probes: a string id as check() sees it
    print(f"{'entries':>10} {'B/entry':>8} {'build s':>8} {'save s':>7} {'load s':>7} "
          f"{'delta10k ms':>12} {'lookup p50 ns':>14}")
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        row = measure(size, rng, signer, ids, args.repeat)
        rows.append(row)
        print(f"{row.n:>10,} {row.bytes_per_entry:>8.3f} {row.build_s:>8.2f} "
              f"{row.save_s:>7.2f} {row.load_s:>7.2f} {row.delta_ms:>12.1f} "
              f"{row.lookup_p50_ns:>14.0f}", flush=True)
    print(f"lookup p50 growth from the smallest to the largest size: "
          f"{rows[-1].lookup_p50_ns / rows[0].lookup_p50_ns:.2f}x (target ≤ 2x)")
    print(f"\ndelta10k by phase, median of {args.repeat} (ms); delta10k is decode + apply + "
          "checksum + the signature check; the sync persists before it swaps")
    print(f"{'entries':>10} {'decode':>8} {'apply':>8} {'checksum':>9} {'persist':>8}")
    for row in rows:
        print(f"{row.n:>10,} {row.decode_ms:>8.1f} {row.apply_ms:>8.1f} "
              f"{row.checksum_ms:>9.1f} {row.persist_ms:>8.1f}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
