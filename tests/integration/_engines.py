"""The real sandbox list service on either store engine, for tests whose guarantee must hold
on both (a uniquely named module: test files import it whichever conftest pytest loaded)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from credit_check._server import SandboxServer

ENGINES = ["sqlite", "postgres"]
CLI = [sys.executable, "-m", "credit_check._cli"]


def keygen(directory: Path) -> tuple[Path, Path]:
    """A signing key and a data key made by ``credit-check serve keygen``."""
    signing, data = directory / "signing.key", directory / "data.key"
    result = subprocess.run([*CLI, "serve", "keygen", str(signing), "--data-key", str(data)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return signing, data


def start_sandbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SandboxServer]:
    """A started demo sandbox on the engine of ``request.param``, stopped afterwards."""
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
        signing, data = keygen(tmp_path)
        server = SandboxServer(url, demo=True, port=0, signing_key=signing, data_key=data)
    else:
        server = SandboxServer(tmp_path / "sandbox.sqlite3", demo=True, port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()
