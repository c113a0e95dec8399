"""Natural persons at rest in the sandbox's own files: after a demo load, lookups of
persons and feedback naming persons, no person's id number and no person's name is in the
database, its WAL or its shared-memory file in clear; the data key file is private."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from _sandbox_app_support import Sandbox, TestClient, person_records

from credit_check._exceptions import ConfigurationError
from credit_check._server import create_app, open_sandbox
from credit_check._server._demo import build

DATA_KEY_ENV = "CREDIT_CHECK_SANDBOX_DATA_KEY"


def persons_of_the_demo() -> tuple[set[str], set[str]]:
    entries, subjects, _ = build()
    ids = {s[0] for s in subjects if s[1] == "person"}
    ids |= {s[3] for s in subjects if s[3]}
    ids |= {e["subject_id"] for e in entries if e["subject_kind"] == "person"}
    ids |= {e["legal_representative_id"] for e in entries if e["legal_representative_id"]}
    names = {s[2] for s in subjects if s[1] == "person" and s[2]}
    return ids, names


def database_files(db: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in db.parent.iterdir()
            if p.name in {db.name, db.name + "-wal", db.name + "-shm"}}


@pytest.fixture
def loaded(tmp_path: Path) -> Iterator[tuple[Sandbox, Path]]:
    db = tmp_path / "s.db"
    store, signer, admin_key, demo_key = open_sandbox(db, demo=True)
    with TestClient(create_app(store, signer, admin_key), raise_server_exceptions=False) as c:
        yield Sandbox(c, store, signer, admin_key, demo_key), db
    store.close()


def test_no_person_id_or_name_in_clear_in_the_database_files(
    loaded: tuple[Sandbox, Path],
) -> None:
    sb, db = loaded
    ids, names = persons_of_the_demo()
    assert len(ids) > 200 and len(names) > 5
    some = sorted(ids)[:40]
    for pid in some:  # lookups of persons, with and without person rights
        assert sb.get(f"/v1/subjects/{pid}").status_code == 200
    plain = sb.new_key("住建局")["api_key"]
    resp = sb.post("/v1/subjects:batch", plain, json={"ids": some})
    assert resp.status_code == 200
    records = person_records(sb.demo_key, [(pid, name) for pid, name in
                                           zip(some, sorted(names), strict=False)])
    resp = sb.post("/v1/feedback", json={"records": records})
    assert len(resp.json()["accepted"]) == len(records)
    # The sandbox still answers with the persons (sealed, not lost).
    got = sb.admin("GET", "/v1/admin/feedback").json()["records"]
    assert {r["subject"]["id"] for r in got} == {r["subject"]["id"] for r in records}
    black = sb.get(f"/v1/subjects/{sorted(ids)[0]}").json()
    assert black["subject"]["id"] == sorted(ids)[0]
    files = database_files(db)
    assert {db.name, db.name + "-wal"} <= set(files)
    for name, data in files.items():
        for pid in ids:
            assert pid.encode() not in data, (name, "a person id in clear")
        for person_name in names:
            assert person_name.encode() not in data, (name, "a person name in clear")
    sb.store.close()  # and after a checkpoint into the main file
    data = db.read_bytes()
    assert not any(pid.encode() in data for pid in ids)
    assert not any(n.encode() in data for n in names)


def test_the_data_key_file_is_private_and_the_variable_wins(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    db = tmp_path / "a.db"
    store, *_ = open_sandbox(db, demo=False)
    store.close()
    key_file = tmp_path / "a.db.data-key"
    assert (key_file.stat().st_mode & 0o777) == 0o600 and len(key_file.read_bytes()) == 32
    monkeypatch.setenv(DATA_KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    other = tmp_path / "b.db"
    store, *_ = open_sandbox(other, demo=False)
    store.close()
    assert not (tmp_path / "b.db.data-key").exists()
    # The database refuses another key than its own, with a message that says which.
    monkeypatch.setenv(DATA_KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(ConfigurationError, match="data key"):
        open_sandbox(other, demo=False)
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        monkeypatch.setenv(DATA_KEY_ENV, bad)
        with pytest.raises(ConfigurationError, match=DATA_KEY_ENV):
            open_sandbox(tmp_path / "c.db", demo=False)
