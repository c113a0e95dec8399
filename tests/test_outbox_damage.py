"""What the outbox does with damage: a zero-length, truncated or garbage store is moved
aside (an ERROR, shown by status) while a fresh store serves, and ``credit-check outbox
salvage`` recovers every readable record of the damaged copy; damage inside a journal and
records under another key are kept aside and counted, never dropped silently; a wave-1
outbox is migrated with its pending records kept."""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
from pathlib import Path

import pytest
from _outbox_child import (
    API_KEY,
    CIPHER_KEY,
    import_all,
    import_new,
    make_decision,
    make_outbox,
    write,
)

from credit_check._cli import main
from credit_check._crypto import FieldCipher, feedback_key
from credit_check._feedback import decision_record
from credit_check._outbox import Outbox
from credit_check._outbox._importer import store_row
from credit_check._outbox._types import OUTBOX_FILE

OTHER_KEY = bytes(range(1, 33))


def filled_store(directory: Path, n: int) -> list[str]:
    """A data directory whose store holds ``n`` imported, pending records."""
    with make_outbox(directory) as outbox:
        ids = [write(outbox, i) for i in range(n)]
        import_all(outbox)
        outbox.store.checkpoint()
    return ids


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    for side in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        side.unlink(missing_ok=True)
    if how == "zero-length":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(b"\x17not a database at all\x00" * 200)
    elif how == "damaged pages":
        # Keep the header and the first pages, overwrite a stretch of pages after them.
        page = 4096
        path.write_bytes(data[: 2 * page] + b"\xff" * page + data[3 * page :])


@pytest.mark.parametrize("how", ["zero-length", "truncated", "garbage"])
def test_a_damaged_store_is_moved_aside_and_a_fresh_one_serves(
        tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture) -> None:
    filled_store(tmp_path, 200)
    # The store's journal offsets are lost with it: a journal still on disk (here the one
    # the 200 came from) is imported again — duplicates the service answers as such.
    damage(tmp_path / OUTBOX_FILE, how)
    with make_outbox(tmp_path) as outbox:  # what Checker() does: it starts, it does not raise
        write(outbox, 500)
        assert import_new(outbox) == 201
        status = outbox.status()
    assert len(status.damaged) == 1 and ".damaged-" in status.damaged[0]
    assert status.pending == 201
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "moved aside" in errors[0].getMessage()
    assert "outbox salvage" in errors[0].getMessage()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CREDIT_CHECK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CREDIT_CHECK_BASE_URL", "http://list.test")
    monkeypatch.setenv("CREDIT_CHECK_API_KEY", API_KEY)
    monkeypatch.setenv("CREDIT_CHECK_ENCRYPTION_KEY", base64.b64encode(CIPHER_KEY).decode())
    return tmp_path


def test_salvage_recovers_every_readable_record_of_a_damaged_copy(
        env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = filled_store(env, 400)
    damage(env / OUTBOX_FILE, "damaged pages")
    with make_outbox(env) as outbox:
        assert not outbox.store.verify()  # what a sender does when it takes the role
        [copy] = outbox.status().damaged
    assert main(["outbox", "salvage", copy, "--json"]) in (0, 1)  # 1: some were unreadable
    found = json.loads(capsys.readouterr().out)
    assert found["recovered"] >= 300 and found["recovered"] + found["unreadable"] <= 400
    with make_outbox(env) as outbox:
        recovered = {c.record_id for c in outbox.store.claim(1000, lease=0, owner="t")}
    assert len(recovered) == found["recovered"] and recovered <= set(ids)
    # A second salvage of the same copy adds nothing twice.
    main(["outbox", "salvage", copy, "--json"])
    assert json.loads(capsys.readouterr().out)["recovered"] == 0


def test_salvage_of_an_intact_copy_recovers_all_of_it(
        env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ids = filled_store(env / "elsewhere", 50)
    make_outbox(env).close()
    assert main(["outbox", "salvage", str(env / "elsewhere" / OUTBOX_FILE), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"recovered": 50, "present": 0,
                                                   "unreadable": 0}
    with make_outbox(env) as outbox:
        assert {c.record_id for c in outbox.store.claim(1000, lease=0, owner="t")} == set(ids)


def test_records_under_another_key_are_kept_aside_counted_and_salvaged_with_that_key(
        env: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    # What two workers that each generated a key did: half the records under another key.
    with Outbox(env, cipher=FieldCipher(OTHER_KEY), hmac_key=feedback_key(API_KEY)) as other:
        lost = [write(other, i) for i in range(5)]
    with make_outbox(env) as outbox:
        kept = [write(outbox, i) for i in range(3)]
        assert import_new(outbox) == 3
        status = outbox.status()
    assert status.undecryptable == 5 and status.pending == 3
    assert any(r.levelno == logging.ERROR and "cannot be decrypted" in r.getMessage()
               for r in caplog.records)
    assert main(["outbox", "status"]) == 0
    assert "undecryptable: 5" in capsys.readouterr().out
    assert main(["outbox", "salvage", "--key", base64.b64encode(OTHER_KEY).decode(),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["recovered"] == 5
    with make_outbox(env) as outbox:
        assert outbox.status().undecryptable == 0
        pending = {c.record_id for c in outbox.store.claim(100, lease=0, owner="t")}
    assert pending == set(lost) | set(kept)


def test_damage_inside_a_journal_is_skipped_kept_aside_and_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = make_outbox(tmp_path)
    ids = [write(outbox, i) for i in range(10)]
    outbox.close()
    [journal] = (tmp_path / "journal").iterdir()
    data = bytearray(journal.read_bytes())
    frame = len(data) // 10
    data[3 * frame + 20 : 3 * frame + 40] = b"\x00" * 20  # inside the fourth record
    journal.write_bytes(bytes(data))
    with make_outbox(tmp_path) as again:
        stored = [c.record_id for c in import_all(again)]
        status = again.status()
    assert len(stored) >= 8 and set(stored) <= set(ids) and ids[0] in stored
    assert status.undecryptable >= 1
    assert "damaged" in caplog.text and list((tmp_path / "journal").iterdir()) == []


def test_a_torn_last_record_of_a_killed_writer_is_skipped_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = make_outbox(tmp_path)
    ids = [write(outbox, i) for i in range(5)]
    outbox.close()
    [journal] = (tmp_path / "journal").iterdir()
    data = journal.read_bytes()
    journal.write_bytes(data + data[-len(data) // 5 :][:40])  # half a frame: a write cut off
    with make_outbox(tmp_path) as again:
        assert [c.record_id for c in import_all(again)] == ids
    assert "never completed" in caplog.text
    assert list((tmp_path / "journal").iterdir()) == []


def test_a_wave1_outbox_is_migrated_and_its_pending_records_kept(tmp_path: Path) -> None:
    # A wave-1 outbox: the records table alone, rows as wave 1 wrote them.
    path = tmp_path / OUTBOX_FILE
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE records (seq INTEGER PRIMARY KEY AUTOINCREMENT, record_id TEXT NOT NULL,
            kind TEXT NOT NULL, decision_id TEXT NOT NULL, case_id TEXT,
            scenario TEXT NOT NULL, outcome TEXT NOT NULL, created_at TEXT NOT NULL,
            added_at REAL NOT NULL, state INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL DEFAULT 0,
            lease_until REAL NOT NULL DEFAULT 0, lease_owner TEXT, delivered_at REAL,
            dead_reason TEXT, hmac TEXT NOT NULL, body BLOB NOT NULL);
        CREATE INDEX records_pending ON records(seq) WHERE state = 0;
    """)
    cipher = FieldCipher(CIPHER_KEY)
    records = [decision_record(make_decision(i), department="d").model_dump(mode="json")
               for i in range(4)]
    for data in records:
        del data["hmac"]
        conn.execute("INSERT INTO records (record_id, kind, decision_id, case_id, scenario, "
                     "outcome, created_at, added_at, hmac, body, lease_until, lease_owner) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     store_row(data, feedback_key(API_KEY), cipher, now=1.0))
    conn.commit()
    conn.close()
    with make_outbox(tmp_path) as outbox:
        claimed = outbox.store.claim(10, lease=0, owner="t")
        assert outbox.status().damaged == ()
        first = outbox.decision(records[0]["decision_id"])
    assert [c.record_id for c in claimed] == [r["record_id"] for r in records]
    assert first is not None and first.record_id == records[0]["record_id"]
