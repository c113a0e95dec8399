"""Project commands that set themselves up: ``python3 scripts/dev.py demo|test|bench``.

``test`` without arguments runs ruff, mypy (strict, over ``credit_check/`` and ``adapters/``)
and the whole test suite, as CI does; with arguments, pytest alone with those arguments.

Each creates ``.venv`` beside the project (if missing), installs the project with its
``dev`` extra from the project's own files (again whenever pyproject.toml changes), then
runs the command. Python 3.11 is all it assumes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".credit-check-installed"


def _run(*args: str | Path) -> int:
    return subprocess.call([str(a) for a in args], cwd=ROOT)  # noqa: S603 -- our own fixed commands


def ensure_env() -> None:
    """Create the virtual environment and install the project if needed."""
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing credit-check[dev] into .venv ...", flush=True)
    rc = _run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    rc = rc or _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    if rc:
        sys.exit(f"installing the project failed (exit {rc}); see pip's message above")
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "bench", "setup"}:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    ensure_env()
    command, rest = argv[0], argv[1:]
    if command == "setup":
        return 0
    if command == "demo":
        return _run(BIN / "credit-check", "demo", *rest)
    if command == "test":
        # The lint and the strict typing gate the tests, as in CI; a full run only (with
        # arguments, pytest alone runs, for quick iterations).
        if not rest:
            for check in (("ruff", "check", "."), ("mypy",)):
                print(f"$ {' '.join(check)}", flush=True)
                if rc := _run(BIN / check[0], *check[1:]):
                    return rc
        return _run(BIN / "python", "-m", "pytest", *rest)
    return _run(BIN / "python", "bench/run_all.py", *rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
