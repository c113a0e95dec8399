"""What catalogues cost a check, side by side in one run: Checker.check() without a shadow
catalogue and with one (the dry-run of issue 14), for a subject on no list (decided from
the snapshot) and a listed one on a warm cache; and the layered catalogue's measure
selection for a case with a region against one without.

The sandbox (demo data) runs in-process on loopback; the checks measured here never reach
it (the snapshot and the cache answer). The outbox is off in both configurations, so the
figures are the decision path's own. Rounds are interleaved; p50 is the median of the
round medians.

    .venv/bin/python bench/bench_catalog.py [--n 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from credit_check import Checker, Transaction
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE, demo_catalog

KEY = base64.b64encode(b"bench-catalog-key-32-bytes-long!").decode()


def median_ns(fn: Callable[[], object], n: int) -> float:
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        t0 = clock()
        fn()
        out.append(clock() - t0)
    return statistics.median(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="checks per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    server = SandboxServer(tmp / "sandbox.db", demo=True, port=0)
    server.start()
    draft = demo_catalog()
    draft["version"] = "draft"
    next(m for m in draft["measures"] if m["code"] == "P-001")["effect"] = "review"

    def checker(name: str, shadow: object = "off") -> Checker:
        c = Checker(base_url=server.base_url, api_key=server.demo_key, department="基准测试",
                    data_dir=tmp / name, encryption_key=KEY, feedback=False, start=False,
                    service_public_key=server.public_key, shadow_catalog=shadow)  # type: ignore[arg-type]
        assert c.sync()
        return c

    try:
        plain = checker("plain")
        shadow = checker("shadow", draft)
        clean, listed = SHOWCASE["unknown_org"], SHOWCASE["court_defaulter_org"]
        procurement = Transaction(scenario="procurement")
        fuxin = Transaction(scenario="procurement", region="210902")
        for c in (plain, shadow):
            c.check(listed, procurement)  # warm the cache
        cases: dict[str, Callable[[], object]] = {
            "not listed, no shadow": lambda: plain.check(clean, procurement),
            "not listed, shadow": lambda: shadow.check(clean, procurement),
            "listed warm, no shadow": lambda: plain.check(listed, procurement),
            "listed warm, shadow": lambda: shadow.check(listed, procurement),
            "listed warm, region 210902": lambda: plain.check(listed, fuxin),
        }
        found: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):
            for name, fn in cases.items():
                found[name].append(median_ns(fn, args.n))
        p50 = {name: statistics.median(v) / 1000 for name, v in found.items()}
        # The hook is one attribute test; the empty call is the timer's own cost.
        hook = (median_ns(lambda: plain._shadow_on, args.n)
                - median_ns(lambda: None, args.n)) / 1000
        print(f"check() p50, µs ({args.rounds} rounds × {args.n}; outbox off):")
        for name, value in p50.items():
            print(f"  {name:<28} {value:7.2f}")
        print(f"  shadow / no shadow, not listed: {p50['not listed, shadow'] / p50['not listed, no shadow']:.2f}×")
        print(f"  shadow / no shadow, listed:     {p50['listed warm, shadow'] / p50['listed warm, no shadow']:.2f}×")
        print(f"  with a region / without, listed: "
              f"{p50['listed warm, region 210902'] / p50['listed warm, no shadow']:.2f}×")
        print(f"  the hook without a shadow catalogue: {hook * 1000:.0f} ns "
              f"({100 * hook / p50['not listed, no shadow']:.1f} % of a check)")
        print(f"  differences counted: {shadow.status().shadow_diff:,} of "
              f"{shadow.status().shadow_checks:,}")
        plain.close()
        shadow.close()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
