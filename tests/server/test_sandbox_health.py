"""The service's liveness and readiness probes (DESIGN §9.8) on both store engines:
``/readyz`` is 200 only with the database reachable, the signing key loaded and a
catalogue present."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg
import pytest
from _sandbox_app_support import TestClient

from credit_check._crypto import Signer
from credit_check._models import Catalog
from credit_check._server import create_app
from credit_check._server._demo import demo_catalog
from credit_check._server._personal import PersonalData
from credit_check._server._postgres import PostgresStore
from credit_check._server._sqlite import SQLiteStore


def test_healthz_and_readyz_answer_200_on_a_working_sqlite_service(tmp_path: Path) -> None:
    signer = Signer.generate()
    store = SQLiteStore(tmp_path / "s.db", signer, PersonalData(os.urandom(32)))
    store.put_catalog(Catalog.load(demo_catalog()))
    try:
        client = TestClient(create_app(store, signer, "admin"))
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["ready"] is True
        assert set(ready.json()["checks"]) == {"database", "signing_key", "catalogue"}
    finally:
        store.close()


def test_readyz_is_503_without_a_catalogue(tmp_path: Path) -> None:
    signer = Signer.generate()
    store = SQLiteStore(tmp_path / "s.db", signer, PersonalData(os.urandom(32)))
    try:
        client = TestClient(create_app(store, signer, "admin"))
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["catalogue"] == "missing"
        assert ready.json()["checks"]["database"] == "ok"
        assert client.get("/healthz").status_code == 200  # alive all the same
    finally:
        store.close()


def test_readyz_follows_the_postgresql_database_going_away_and_back(pg_url: str) -> None:
    signer = Signer.generate()
    store = PostgresStore(pg_url, signer, PersonalData(os.urandom(32)), pool_size=2,
                          retry_for=1.0)
    store.put_catalog(Catalog.load(demo_catalog()))
    admin_url, dbname = pg_url.rsplit("/", 1)[0] + "/postgres", pg_url.rsplit("/", 1)[1]
    try:
        client = TestClient(create_app(store, signer, "admin"))
        assert client.get("/readyz").status_code == 200
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS false')
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                         "datname = %s AND pid <> pg_backend_pid()", (dbname,))
        gone = client.get("/readyz")
        assert gone.status_code == 503 and gone.json()["checks"]["database"] == "unreachable"
        assert client.get("/healthz").status_code == 200
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS true')
        # The pool reconnects with its own backoff: ready again within seconds.
        deadline = time.monotonic() + 30
        while (status := client.get("/readyz").status_code) != 200 \
                and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status == 200
    finally:
        store.close()


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_the_probes_need_no_key_and_name_no_data(tmp_path: Path, path: str) -> None:
    signer = Signer.generate()
    store = SQLiteStore(tmp_path / "s.db", signer, PersonalData(os.urandom(32)))
    store.put_catalog(Catalog.load(demo_catalog()))
    try:
        body = TestClient(create_app(store, signer, "admin")).get(path).text
        assert "admin" not in body and signer.public_key not in body
    finally:
        store.close()
