"""Middleware fuzz run: many generated hostile requests through both middlewares.

Uses the generators and the invariant of ``tests/middleware/test_middleware_fuzz.py``
(the app's 2xx with the body byte-identical, or a 4xx ``application/problem+json`` from the
middleware; never a 5xx, never an exception) and prints how many requests were tried, how
the answers were spread, and every failure (first few in full).

Run: ``.venv/bin/python bench/fuzz_middleware.py [--examples 6000] [--seed 0]``
(each example goes through the ASGI and the WSGI middleware: 6000 examples = 12,000 requests).
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "middleware"))

from hypothesis import HealthCheck, given, seed, settings
from test_middleware_fuzz import Request, Result, fuzz_one, policies, requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # python-multipart logs a warning per malformed part; thousands of them say nothing here.
    logging.getLogger("python_multipart").setLevel(logging.ERROR)
    logging.getLogger("credit_check").setLevel(logging.CRITICAL)

    tried = 0
    statuses: collections.Counter[str] = collections.Counter()
    failures: list[str] = []

    def count(kind: str, result: Result) -> None:
        statuses[f"{result.status}{' app' if result.app_body is not None else ''}"] += 1

    @seed(args.seed)
    @settings(max_examples=args.examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(req=requests(), options=policies)
    def run(req: Request, options: dict[str, Any]) -> None:
        nonlocal tried
        tried += 2
        try:  # both middlewares, so their answers are compared too
            fuzz_one(req, options, on_result=count)
        except Exception:  # record every failure and go on: a census, not a test
            failures.append(traceback.format_exc())

    started = time.monotonic()
    run()
    elapsed = time.monotonic() - started
    print(f"requests tried: {tried} ({args.examples} examples x ASGI + WSGI) "
          f"in {elapsed:.1f} s")
    print("answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())))
    print(f"failures: {len(failures)} (examples whose ASGI or WSGI answer broke the invariant, "
          "or whose two answers differed)")
    for text in failures[:5]:
        print("-" * 72)
        print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
