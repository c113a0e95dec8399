"""Older sandbox databases, made by the old code itself, are migrated on open. A wave-1 one
(commit 365e246, the last with schema 1): every entry, subject, key and feedback record is
kept, the database records its schema version, and no person is left in clear in its files.
A schema-2 one (SQLite or PostgreSQL): the stats columns are filled from the sealed
records, once."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from _sandbox_app_support import Sandbox, TestClient, feedback_records, person_records

from credit_check._crypto import Signer
from credit_check._server import create_app, open_sandbox
from credit_check._server._demo import SHOWCASE
from credit_check._server._store import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
WAVE_1 = "365e246"

OLD_SCRIPT = """
import json, sys
from pathlib import Path
import credit_check
from credit_check._crypto import feedback_key, record_hmac
from credit_check._server import open_sandbox
db, records = Path(sys.argv[1]), json.loads(sys.stdin.read())
store, signer, admin, demo = open_sandbox(db, demo=True)
made = store.create_key("迁移局", False)
key = store.find_key(demo)
for r in records:
    r["hmac"] = record_hmac(feedback_key(demo), r)
store.add_feedback(key, [(r, store.signed_body(key, r)) for r in records])
count = store._conn().execute("SELECT COUNT(*) FROM entries").fetchone()[0]
print(json.dumps({"file": credit_check.__file__, "key": made["api_key"], "demo": demo,
                  "version": store.index.version, "public": signer.public_key,
                  "entries": count, "records": records}))
store.close()
"""


def old_code(tmp: Path, commit: str = WAVE_1) -> Path:
    """The credit_check package as it was at ``commit``, extracted with git."""
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "credit_check"],
                                 capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the code of {commit} is not available from git: {exc}")
    root = tmp / f"code-{commit}"
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    return root


def make_wave1_database(tmp: Path, db: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    env = {"PYTHONPATH": str(old_code(tmp)), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", OLD_SCRIPT, str(db)], input=json.dumps(records),
                          capture_output=True, text=True, env=env, timeout=120, check=False,
                          cwd=tmp)
    assert done.returncode == 0, done.stderr
    info: dict[str, Any] = json.loads(done.stdout)
    assert info["file"].startswith(str(tmp)), "the old code was not the one run"
    return info


def test_a_wave1_database_is_migrated_without_losing_anything(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    person, name = SHOWCASE["black_person"], "迁移测试人"
    unsigned = person_records("placeholder", [(person, name)])
    for r in unsigned:
        r.pop("hmac")
    old = make_wave1_database(tmp_path, db, unsigned)
    raw = db.read_bytes() + (db.with_name("old.db-wal").read_bytes()
                             if db.with_name("old.db-wal").exists() else b"")
    assert person.encode() in raw  # wave 1 kept it in clear

    store, signer, admin, demo = open_sandbox(db, demo=True)
    try:
        assert store.schema_version == SCHEMA_VERSION
        assert store.meta("schema_version") == str(SCHEMA_VERSION)
        assert (signer.public_key, demo) == (old["public"], old["demo"])
        with TestClient(create_app(store, signer, admin)) as client:
            sb = Sandbox(client, store, signer, admin, demo)
            stats = sb.admin("GET", "/v1/admin/stats").json()
            assert stats["entries"] == old["entries"] and stats["version"] == old["version"]
            received = sb.admin("GET", "/v1/admin/feedback").json()["records"]
            assert received == old["records"]
            # The key made under wave 1 still works, and sees no persons.
            answer = sb.get(f"/v1/subjects/{person}", old["key"]).json()
            assert answer["withheld"] == [{"role": "subject",
                                           "reason": "key_not_allowed_persons"}]
            shown = sb.get(f"/v1/subjects/{person}").json()
            assert [e["subject_id"] for e in shown["entries"]] == [person]
            court = sb.get(f"/v1/subjects/{SHOWCASE['court_defaulter_org']}").json()
            assert court["subject"]["legal_representative"]["id"] == SHOWCASE[
                "court_defaulter_rep"]
            assert sb.get("/v1/catalog").json()["serial"] == 1
            assert sb.get(f"/v1/snapshot?since={old['version']}").json()["added"] == ""
            assert sb.get(f"/v1/snapshot?since={old['version'] - 1}").status_code == 410
        for suffix in ("", "-wal", "-shm"):
            path = db.with_name(db.name + suffix)
            if path.exists():
                data = path.read_bytes()
                for secret in (person, SHOWCASE["court_defaulter_rep"], name):
                    assert secret.encode() not in data, (path.name, "in clear after migration")
    finally:
        store.close()
    # Opening it again does not migrate again.
    store, *_ = open_sandbox(db, demo=True)
    try:
        assert store.stats()["entries"] == old["entries"]
    finally:
        store.close()


# -- schema 2 (the code of commit 47f92d1) to 3: the stats columns -------------------------

SCHEMA_2 = "47f92d1"

V2_SCRIPT = """
import json, sys
from pathlib import Path
import credit_check
from credit_check._crypto import feedback_key, record_hmac
from credit_check._server import open_sandbox
from credit_check._server._intake import take_feedback
db, keys, records = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.stdin.read())
if not db.startswith("postgresql"):
    db = Path(db)
store, signer, admin, demo = open_sandbox(db, demo=True, **keys)
key = store.find_key(demo)
for r in records:
    r["hmac"] = record_hmac(feedback_key(demo), r)
good, rejected = take_feedback(key, json.dumps({"records": records}).encode())
assert not rejected, rejected
store.add_feedback(good)
print(json.dumps({"file": credit_check.__file__, "schema": store.schema_version,
                  "records": records}))
store.close()
"""


def make_schema2_database(tmp: Path, db: str, records: list[dict[str, Any]],
                          keys: dict[str, str]) -> dict[str, Any]:
    code = old_code(tmp, SCHEMA_2)
    env = {"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", V2_SCRIPT, db, json.dumps(keys)],
                          input=json.dumps(records), capture_output=True, text=True, env=env,
                          timeout=120, check=False, cwd=tmp)
    assert done.returncode == 0, done.stderr
    info: dict[str, Any] = json.loads(done.stdout)
    assert info["file"].startswith(str(code)) and info["schema"] == 2
    return info


def _schema2_records() -> list[dict[str, Any]]:
    records = feedback_records("placeholder", 3)
    records[0]["transaction"]["region"] = "350100"
    records[1]["degraded"] = True
    records[2]["kind"] = "outcome"  # the outcome of case CASE-2, which no check names
    for r in records:
        r.pop("hmac")
    return records


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_a_schema2_database_gets_the_stats_columns_from_its_records(
        tmp_path: Path, request: pytest.FixtureRequest, engine: str) -> None:
    keys: dict[str, str] = {}
    db = str(tmp_path / "v2.db")
    if engine == "postgres":
        db = request.getfixturevalue("pg_url")
        signing, data = tmp_path / "signing.key", tmp_path / "data.key"
        signing.write_bytes(Signer.generate().private_bytes())
        data.write_bytes(os.urandom(32))
        keys = {"signing_key": str(signing), "data_key_file": str(data)}
    old = make_schema2_database(tmp_path, db, _schema2_records(), keys)
    target: str | Path = db if engine == "postgres" else Path(db)
    store, *_ = open_sandbox(target, demo=True, **keys)
    try:
        assert store.schema_version == SCHEMA_VERSION == 3
        stats = store.stats()
        assert stats["total"] == {"checks": 2, "hits": 1, "measures": 1, "degraded": 1}
        assert {r["region"] for r in stats["by_region"]} == {"350100", None}
        assert {r["list_code"] for r in stats["by_list"]} == {"court.judgment_defaulter"}
        assert [(u["case_id"], u["kind"]) for u in stats["coverage"]["unchecked"]] == [
            ("CASE-2", "outcome")]
        assert [r["record_id"] for r in store.feedback_page(None, 0, 10).records] == [
            r["record_id"] for r in old["records"]]
    finally:
        store.close()
    store, *_ = open_sandbox(target, demo=True, **keys)  # opened again: not migrated again
    try:
        assert store.stats()["total"]["checks"] == 2
        assert len(store.stats()["by_list"]) == 1
    finally:
        store.close()
