"""The list service on PostgreSQL, beyond the engine-neutral store tests: its keys are given,
never made, for a shared database; a bad URL, a wrong password, another key or a newer
schema is a clear start-up error that never shows the password; a lost connection is
retried, and a database that stays down is answered 503 until it is back."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from _postgres import PASSWORD, Cluster, free_port
from _sandbox_app_support import (
    Sandbox,
    TestClient,
    assert_problem,
    entry,
    feedback_records,
    org_id,
)

from credit_check._crypto import Signer
from credit_check._exceptions import ConfigurationError
from credit_check._server import create_app, open_sandbox
from credit_check._server._personal import PersonalData
from credit_check._server._postgres import PostgresStore
from credit_check._server._store import SCHEMA_VERSION

CLI = [sys.executable, "-m", "credit_check._cli"]


def keygen(directory: Path) -> tuple[Path, Path]:
    """A signing key and a data key made by ``credit-check serve keygen``."""
    signing, data = directory / "signing.key", directory / "data.key"
    result = subprocess.run([*CLI, "serve", "keygen", str(signing), "--data-key", str(data)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return signing, data


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return keygen(tmp_path)


@pytest.fixture
def sandbox(pg_url: str, keys: tuple[Path, Path]) -> Iterator[Sandbox]:
    store, signer, admin_key, demo_key = open_sandbox(pg_url, demo=True, signing_key=keys[0],
                                                      data_key_file=keys[1])
    try:
        with TestClient(create_app(store, signer, admin_key)) as client:
            yield Sandbox(client, store, signer, admin_key, demo_key)
    finally:
        store.close()


def terminate_sessions(cluster: Cluster, url: str) -> int:
    """Cut every connection to the database of ``url`` (as a server restart would)."""
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                            "datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
    return len(rows)


def test_keygen_makes_private_key_files_once(tmp_path: Path) -> None:
    signing, data = keygen(tmp_path)
    for path in (signing, data):
        assert len(path.read_bytes()) == 32 and path.stat().st_mode & 0o777 == 0o600
    again = subprocess.run([*CLI, "serve", "keygen", str(signing)], capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 2 and "exists" in again.stderr
    assert len(signing.read_bytes()) == 32


def test_an_instance_never_makes_keys_for_a_shared_database(
        pg_url: str, tmp_path: Path, keys: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("CREDIT_CHECK_SIGNING_KEY_FILE", "CREDIT_CHECK_SANDBOX_DATA_KEY_FILE",
                 "CREDIT_CHECK_SANDBOX_DATA_KEY"):
        monkeypatch.delenv(name, raising=False)
    before = sorted(tmp_path.iterdir())
    with pytest.raises(ConfigurationError, match="serve keygen FILE") as caught:
        open_sandbox(pg_url, demo=False)
    assert PASSWORD not in str(caught.value) and "***" in str(caught.value)
    with pytest.raises(ConfigurationError, match="--data-key FILE"):
        open_sandbox(pg_url, demo=False, signing_key=keys[0])
    assert sorted(tmp_path.iterdir()) == before  # no key file was made anywhere
    # The same keys from the environment are enough.
    monkeypatch.setenv("CREDIT_CHECK_SIGNING_KEY_FILE", str(keys[0]))
    monkeypatch.setenv("CREDIT_CHECK_SANDBOX_DATA_KEY_FILE", str(keys[1]))
    store, signer, *_ = open_sandbox(pg_url, demo=False)
    assert signer.public_key == Signer.from_bytes(keys[0].read_bytes()).public_key
    assert store.schema_version == SCHEMA_VERSION
    assert store.meta("schema_version") == str(SCHEMA_VERSION)
    store.close()


def test_another_signing_key_data_key_or_newer_schema_is_refused(pg_url: str) -> None:
    signer, data_key = Signer.generate(), os.urandom(32)
    PostgresStore(pg_url, signer, PersonalData(data_key)).close()
    with pytest.raises(ConfigurationError, match=r"signing key .* not the one"):
        PostgresStore(pg_url, Signer.generate(), PersonalData(data_key))
    with pytest.raises(ConfigurationError, match=r"data key .* not the one"):
        PostgresStore(pg_url, signer, PersonalData(os.urandom(32)))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(ConfigurationError, match=r"schema 99.*upgrade credit-check") as caught:
        PostgresStore(pg_url, signer, PersonalData(data_key))
    assert PASSWORD not in str(caught.value)


@pytest.mark.parametrize("problem", ["unreachable", "wrong password", "no such database",
                                     "malformed"])
def test_a_bad_database_url_is_a_clear_startup_error_without_the_password(
        pg_cluster: Cluster, keys: tuple[Path, Path], problem: str) -> None:
    url = {
        "unreachable": f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/x",
        "wrong password": pg_cluster.url(password=PASSWORD + "-wrong"),
        "no such database": pg_cluster.url("no_such_db"),
        "malformed": f"postgresql://postgres:{PASSWORD}@127.0.0.1:notaport/x",
    }[problem]
    expected = {"unreachable": "refused", "wrong password": "password authentication failed",
                "no such database": "does not exist", "malformed": "port"}[problem]
    result = subprocess.run(
        [*CLI, "serve", "--db", url, "--signing-key", str(keys[0]), "--data-key",
         str(keys[1]), "--port", str(free_port())],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    message = result.stderr
    assert "cannot connect to the sandbox database postgresql://postgres:***@127.0.0.1" \
        in message, message
    assert expected in message and PASSWORD not in message + result.stdout, message
    assert "Traceback" not in message


def test_a_lost_connection_is_retried(pg_cluster: Cluster, pg_url: str,
                                      sandbox: Sandbox) -> None:
    org = org_id(7101)
    resp = sandbox.admin("POST", "/v1/admin/entries", json={"entries": [entry("lc-1", org)]})
    assert resp.status_code == 200, resp.text
    for step in ("lookup", "import", "feedback", "snapshot"):
        assert terminate_sessions(pg_cluster, pg_url) >= 1
        if step == "lookup":
            resp = sandbox.get(f"/v1/subjects/{org}")
            assert resp.status_code == 200 and resp.json()["entries"][0]["entry_id"] == "lc-1"
        elif step == "import":
            resp = sandbox.admin("POST", "/v1/admin/entries",
                                 json={"entries": [entry("lc-2", org_id(7102))]})
            assert resp.status_code == 200, resp.text
        elif step == "feedback":
            records = feedback_records(sandbox.demo_key, 3)
            resp = sandbox.post("/v1/feedback", json={"records": records})
            assert resp.status_code == 200, resp.text
            assert len(resp.json()["accepted"]) == 3
        else:
            resp = sandbox.get("/v1/snapshot")
            assert resp.status_code == 200 and resp.json()["version"] == \
                sandbox.store.refresh().version


def test_a_database_that_stays_down_is_answered_503_until_it_is_back(
        pg_cluster: Cluster, pg_url: str, keys: tuple[Path, Path]) -> None:
    name = pg_url.rsplit("/", 1)[1]
    signer = Signer.from_bytes(keys[0].read_bytes())
    store = PostgresStore(pg_url, signer, PersonalData(keys[1].read_bytes()), retry_for=1.0)
    admin = "cc_admin_503_test"
    try:
        with TestClient(create_app(store, signer, admin)) as client, \
                psycopg.connect(pg_cluster.url(), autocommit=True) as su:
            headers = {"Authorization": f"Bearer {admin}"}
            assert client.get("/v1/admin/stats", headers=headers).status_code == 200
            su.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            terminate_sessions(pg_cluster, pg_url)
            started = time.monotonic()
            resp = client.get("/v1/admin/stats", headers=headers)
            assert_problem(resp, 503, "database is unavailable")
            assert resp.headers["retry-after"] == "5" and time.monotonic() - started < 15
            assert PASSWORD not in resp.text
            su.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            deadline = time.monotonic() + 30
            while (status := client.get("/v1/admin/stats", headers=headers).status_code) != 200:
                assert status == 503 and time.monotonic() < deadline
                time.sleep(0.2)
    finally:
        store.close()
