"""Checker.check() cost against the real sandbox over loopback, side by side with the naive
way (one HTTP lookup per check), plus check_many and the outbox's added latency.

Targets (issue 4): not-listed with a warm snapshot ≤ 10 µs p50; listed with a warm cache
≤ 15 µs p50; ≥ 100× faster than naive for not-listed; check_many(1,000, 2 % listed)
≤ 100 ms in one batch round trip.

    .venv/bin/python bench/bench_checker.py [--n 20000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from credit_check import Checker, Subject, Transaction
from credit_check._ids import org_code_check_char, uscc_check_char
from credit_check._models import CST, Catalog, SubjectLookup
from credit_check._rules import decide
from credit_check._server import SandboxServer


def random_uscc(rng: random.Random) -> str:
    body = "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRTUWXY") for _ in range(8))
    org = body + org_code_check_char(body)
    head = "91" + f"{rng.randrange(110000, 660000):06d}" + org
    return head + uscc_check_char(head)


def percentiles(samples_ns: list[int]) -> tuple[float, float]:
    s = sorted(samples_ns)
    return s[len(s) // 2] / 1000, s[int(len(s) * 0.99)] / 1000


def timed(fn: Callable[[], object], n: int) -> list[int]:
    out = []
    clock = time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="checks per measurement")
    args = parser.parse_args()
    rng = random.Random(11)
    tmp = Path(tempfile.mkdtemp(prefix="bench-checker-"))
    (tmp / "sandbox").mkdir()
    server = SandboxServer(tmp / "sandbox" / "sandbox.db", demo=True, port=0)
    server.start()
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    # 20 listed subjects of 1,000 for the check_many measurement (2 %).
    listed = [random_uscc(rng) for _ in range(20)]
    entries = [{
        "entry_id": f"BENCH-{i}", "list_code": "tax.major_violation", "list_kind": "black",
        "subject_id": code, "subject_kind": "organization", "name": f"测试企业{i}",
        "issuing_department": "某市税务局", "basis_document": f"税稽〔2026〕{i}号",
        "reason": "bench", "effective_from": "2026-01-01", "status": "active",
    } for i, code in enumerate(listed)]
    r = requests.post(f"{server.base_url}/v1/admin/entries", json={"entries": entries},
                      headers=admin, timeout=30)
    r.raise_for_status()
    from credit_check._server._demo import SHOWCASE

    tx = Transaction(scenario="procurement", case_id="BENCH-1")
    results: list[tuple[str, float, float]] = []
    try:
        for feedback in (False, True):
            checker = Checker(base_url=server.base_url, api_key=server.demo_key,
                              department="示范市行政审批局", data_dir=tmp / f"checker-{feedback}",
                              service_public_key=server.public_key, feedback=feedback)
            with checker:
                assert checker.wait_ready(15), "checker not ready"
                clean = [Subject.organization(random_uscc(rng)) for _ in range(2000)]
                for s in clean[:200]:
                    checker.check(s, tx)
                it = iter(clean * (args.n // len(clean) + 1))
                p50, p99 = percentiles(timed(lambda: checker.check(next(it), tx), args.n))
                label = "outbox on" if feedback else "outbox off"
                results.append((f"check() not listed, warm snapshot ({label})", p50, p99))
                hit = Subject.organization(SHOWCASE["court_defaulter_org"])
                checker.check(hit, tx)
                p50, p99 = percentiles(timed(lambda: checker.check(hit, tx), args.n))
                results.append((f"check() listed, warm cache ({label})", p50, p99))
                if not feedback:
                    samples = []
                    for _ in range(5):
                        # Fresh not-listed subjects each round; the listed ones are cached
                        # after the first round, so later rounds show the warm case.
                        fresh = [Subject.organization(random_uscc(rng)) for _ in range(980)]
                        fresh += [Subject.organization(c) for c in listed]
                        t0 = time.perf_counter_ns()
                        group = checker.check_many(fresh, tx)
                        samples.append(time.perf_counter_ns() - t0)
                        assert sum(d.outcome.value == "deny" for d in group) == 20
                    samples.sort()
                    results.append(("check_many(1,000; 2 % listed), cold cache, ms",
                                    samples[len(samples) // 2] / 1e6, samples[-1] / 1e6))
        # The naive way: one HTTP lookup per check, then the same rulebook.
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {server.demo_key}"
        catalog = Catalog.load(session.get(f"{server.base_url}/v1/catalog", timeout=5)
                               .json()["catalog"])
        clean_ids = [random_uscc(rng) for _ in range(500)]

        def naive() -> None:
            code = clean_ids[rng.randrange(len(clean_ids))]
            body = session.get(f"{server.base_url}/v1/subjects/{code}", timeout=5).json()
            lookup = SubjectLookup.model_validate(body)
            decide(subject=Subject.organization(code), transaction=tx, catalog=catalog,
                   now=dt.datetime.now(CST), decision_id="x", entries=lookup.entries,
                   clean_since=lookup.clean_since, data_version=lookup.data_version)

        p50, p99 = percentiles(timed(naive, min(args.n, 2000)))
        results.append(("naive: one HTTP lookup per check, not listed", p50, p99))
    finally:
        server.stop()
    print(f"{'measurement':<58} {'p50':>10} {'p99':>10}")
    for name, p50, p99 in results:
        unit = "" if name.endswith("ms") else " µs"
        print(f"{name:<58} {p50:>9.1f}{unit:<1} {p99:>9.1f}{unit}")
    fast = next(p for n, p, _ in results if n.startswith("check() not listed") and "off" in n)
    slow = next(p for n, p, _ in results if n.startswith("naive"))
    print(f"speed-up over naive (p50, not listed, outbox off): {slow / fast:,.0f}x (target ≥ 100x)")
    on = next(p for n, p, _ in results if n.startswith("check() not listed") and "on)" in n)
    print(f"outbox write added to check() p50: {on - fast:.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
