"""Fixtures for the Checker against the real sandbox list service over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _sandbox_support import DEPARTMENT, ENCRYPTION_KEY, Clock, MakeChecker

from credit_check import Checker
from credit_check._server import SandboxServer


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


