"""Fixtures of the case-lifecycle tests: the real sandbox list service over loopback and
Checkers on one shared data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _lifecycle_support import DEPARTMENT, ENCRYPTION_KEY, Clock, MakeChecker

from credit_check import Checker
from credit_check._server import SandboxServer


@pytest.fixture
def options(sandbox: SandboxServer, tmp_path: Path) -> dict[str, Any]:
    """What a Checker of the shared data directory is configured with."""
    return dict(base_url=sandbox.base_url, api_key=sandbox.demo_key, department=DEPARTMENT,
                data_dir=tmp_path / "sdk", encryption_key=ENCRYPTION_KEY,
                service_public_key=sandbox.public_key, start=False)


@pytest.fixture
def make_checker(options: dict[str, Any], clock: Clock) -> Iterator[MakeChecker]:
    made: list[Checker] = []

    def make(**kw: Any) -> Checker:
        checker = Checker(**(options | {"clock": clock} | kw))
        made.append(checker)
        assert checker.sync(), checker.status().last_error
        return checker

    yield make
    for checker in made:
        checker.close()
