"""Fixtures for the Checker against the real sandbox list service over loopback."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from credit_check import Checker
from credit_check._models import CST

try:
    from credit_check._server import SandboxServer
except ImportError:  # pragma: no cover - the sandbox is not part of this checkout yet
    SandboxServer = None  # type: ignore[assignment,misc]

ENCRYPTION_KEY = base64.b64encode(b"integration-key-32-bytes-long!!!").decode()
DEPARTMENT = "市公共资源交易中心"


class Clock:
    """A settable clock that follows real time until a test moves it."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(CST) + self.offset

    def set(self, moment: dt.datetime) -> None:
        self.offset = moment - dt.datetime.now(CST)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    if SandboxServer is None:
        pytest.skip("the sandbox service is not available")
    server = SandboxServer(db_path=tmp_path / "sandbox.sqlite3", demo=True, port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


MakeChecker = Callable[..., Checker]


@pytest.fixture
def make_checker(sandbox: SandboxServer, tmp_path: Path, clock: Clock) -> Iterator[MakeChecker]:
    made: list[Checker] = []

    def make(sync: bool = True, **kw: Any) -> Checker:
        options: dict[str, Any] = dict(
            base_url=sandbox.base_url, api_key=sandbox.demo_key, department=DEPARTMENT,
            data_dir=tmp_path / "sdk", encryption_key=ENCRYPTION_KEY,
            service_public_key=sandbox.public_key, clock=clock, start=False,
        )
        options.update(kw)
        checker = Checker(**options)
        made.append(checker)
        if sync and not options["start"]:
            assert checker.sync(), checker.status().last_error
        elif sync:
            assert checker.wait_ready(10), checker.status().last_error
        return checker

    yield make
    for checker in made:
        checker.close()


def admin(sandbox: SandboxServer, method: str, path: str, **kw: Any) -> Any:
    """Call the sandbox's admin API."""
    resp = requests.request(method, sandbox.base_url + path, timeout=10,
                            headers={"Authorization": f"Bearer {sandbox.admin_key}"}, **kw)
    resp.raise_for_status()
    return resp.json() if resp.content else None
