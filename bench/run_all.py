"""Run every benchmark in bench/ one after another and print their figures.

    python3 scripts/dev.py bench          # or .venv/bin/python bench/run_all.py

Each script also runs alone, with its own options (see its docstring). Figures are
recorded in docs/benchmarks.md; nothing here fails on timing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_snapshot.py", "bench_checker.py", "bench_outbox.py", "bench_rescreen.py",
           "bench_middleware.py", "bench_catalog.py", "bench_sandbox.py", "bench_pg.py",
           "fuzz_middleware.py"]


def main(argv: list[str]) -> int:
    chosen = [s for s in SCRIPTS if not argv or any(a in s for a in argv)]
    failed = []
    for script in chosen:
        print(f"\n=== {script} ===", flush=True)
        if subprocess.call([sys.executable, str(HERE / script)]):
            failed.append(script)
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
