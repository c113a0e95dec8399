"""The throwaway PostgreSQL server the PostgreSQL tests run on: a real server of ours, not
running as root, asking for a password over TCP, one fresh database per test."""

from __future__ import annotations

import os

import psycopg
import pytest
from _postgres import PASSWORD, Cluster


def test_the_server_is_ours_and_not_root(pg_cluster: Cluster, pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        assert version is not None and int(version[0]) >= 120000
        pid_row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert pid_row is not None
    uid = os.stat(f"/proc/{pid_row[0]}").st_uid if os.path.exists(f"/proc/{pid_row[0]}") else 1
    assert uid != 0
    assert pg_cluster.data.is_dir() and pg_url.startswith("postgresql://")


def test_a_wrong_password_is_refused(pg_cluster: Cluster) -> None:
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg_cluster.url(password="not-" + PASSWORD)).close()


def test_each_test_gets_an_empty_database(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT COUNT(*) FROM information_schema.tables WHERE "
                              "table_schema = 'public'").fetchone()
    assert tables == (0,)
