"""Fixtures every test directory can use: a throwaway PostgreSQL server for the session
(``pg_cluster``) and a fresh database on it per test (``pg_url``); the real sandbox with
demo data over loopback (``sandbox``) and a settable clock (``clock``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _live_sandbox import Clock
from _postgres import Cluster, find_bindir

from credit_check._server import SandboxServer


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A PostgreSQL server of our own on a free loopback port, for the whole session."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) found; install Debian's "
                    "'postgresql' package (.ci/run does) to run the PostgreSQL tests")
    cluster = Cluster(bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """A new, empty database for one test; its ``postgresql://`` URL (with a password)."""
    url = pg_cluster.create_database()
    try:
        yield url
    finally:
        pg_cluster.drop_database(url)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    """The real sandbox list service with demo data, over loopback (a test module or a
    folder's conftest may define its own)."""
    server = SandboxServer(db_path=tmp_path / "sandbox.sqlite3", demo=True, port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clock() -> Clock:
    """A settable clock that follows real time until a test moves it."""
    return Clock()
