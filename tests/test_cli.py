"""The ``credit-check`` entry point itself: its version, and the friendly hint (not a
traceback) when a command needs the server extra that is not installed — tried in a real
subprocess in which uvicorn cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

WITHOUT_UVICORN = ("import sys; sys.modules['uvicorn'] = None; "
                   "from credit_check._cli import main; sys.exit(main(sys.argv[1:]))")


def test_version_prints_the_installed_version() -> None:
    done = subprocess.run([sys.executable, "-m", "credit_check._cli", "--version"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.strip() == f"credit-check {version('credit-check')}"


@pytest.mark.parametrize("command", ["demo", "serve"])
def test_without_the_server_extra_a_command_says_what_to_install(tmp_path: Path,
                                                                 command: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_CHECK_")}
    done = subprocess.run([sys.executable, "-c", WITHOUT_UVICORN, command], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (f"credit-check {command} needs the server extra: "
                                   "pip install 'credit-check[server]'")
    assert not list(tmp_path.iterdir())  # nothing was started or written
