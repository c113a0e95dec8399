"""Fixtures for the examples: the real sandbox list service over loopback and a Checker
configured the way each example expects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from _examples_support import ENCRYPTION_KEY

from credit_check import Checker
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = SandboxServer(db_path=tmp_path_factory.mktemp("sandbox") / "s.db", demo=True, port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ids() -> dict[str, str]:
    return SHOWCASE


@pytest.fixture
def checker_options(sandbox: Any, tmp_path: Path) -> dict[str, Any]:
    """What an example's configuration would hold (base_url, api_key, …) for this sandbox."""
    return dict(base_url=sandbox.base_url, api_key=sandbox.demo_key,
                department="示范市行政审批局", data_dir=tmp_path / "credit-check",
                encryption_key=ENCRYPTION_KEY, service_public_key=sandbox.public_key)


@pytest.fixture
def checker(checker_options: dict[str, Any]) -> Iterator[Checker]:
    made = Checker(**checker_options, start=False)
    assert made.sync(), made.status().last_error
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def feedback(sandbox: Any) -> Callable[[], list[dict[str, Any]]]:
    """The feedback records the sandbox received (call after closing the checker)."""

    def records() -> list[dict[str, Any]]:
        resp = requests.get(f"{sandbox.base_url}/v1/admin/feedback", timeout=10,
                            headers={"Authorization": f"Bearer {sandbox.admin_key}"})
        resp.raise_for_status()
        result: list[dict[str, Any]] = resp.json()["records"]
        return result

    return records
