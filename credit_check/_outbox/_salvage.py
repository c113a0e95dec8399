"""Recovering records an outbox could not use: a damaged store copy moved aside, a
journal, or the live store's quarantine (records that did not decrypt with the key of the
time) — into the live outbox, each record at most once.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credit_check._crypto import FieldCipher
from credit_check._exceptions import CreditCheckError, OutboxError
from credit_check._outbox._codec import record_data
from credit_check._outbox._importer import store_row
from credit_check._outbox._journal import AAD, read_frames
from credit_check._outbox._store import Store

logger = logging.getLogger("credit_check.outbox")

SQLITE_MAGIC = b"SQLite format 3\x00"
# A copy damaged everywhere must not keep salvage bisecting for hours.
MAX_QUERIES = 200_000
_ROWS = "seq, record_id, kind, decision_id, case_id, scenario, outcome, created_at, state, " \
        "dead_reason, hmac, body"


@dataclass
class Salvaged:
    """What a salvage found: records recovered, already present, and unreadable."""

    recovered: int = 0
    present: int = 0
    unreadable: int = 0


def salvage(source: Path, store: Store, ciphers: list[FieldCipher], hmac_key: bytes
            ) -> Salvaged:
    """Recover every readable record of ``source`` (a store copy or a journal) into
    ``store``; ``ciphers`` are tried in turn (the live key first)."""
    with open(source, "rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head == SQLITE_MAGIC:
        return _from_store_copy(source, store, ciphers)
    return _from_journal(source, store, ciphers, hmac_key)


def retry_quarantine(store: Store, ciphers: list[FieldCipher], hmac_key: bytes) -> Salvaged:
    """Retry the store's quarantined journal records (and set-aside rows) with ``ciphers``."""
    result = Salvaged()
    live = ciphers[0]
    with store._use("read the quarantine") as conn:
        held = conn.execute("SELECT id, source, reason, data FROM quarantine").fetchall()
        aside = conn.execute(f"SELECT {_ROWS} FROM records WHERE state = 3"  # noqa: S608
                             ).fetchall()
    existing = _existing_ids(store)
    now = time.time()
    for qid, _, _, data in held:
        found = _decode_frame(bytes(data), ciphers)
        if found is None or found["record_id"] in existing:
            if found is None:
                result.unreadable += 1
                continue
            result.present += 1
        else:
            row = store_row(found, hmac_key, live, now=now)
            store.import_rows("salvage", 0, [row])
            existing.add(found["record_id"])
            result.recovered += 1
        with store._use("clear the quarantine") as conn:
            conn.execute("DELETE FROM quarantine WHERE id = ?", (qid,))
    for row in aside:
        plain = _decrypt(bytes(row[11]), row[1].encode(), ciphers)
        if plain is None:
            result.unreadable += 1
            continue
        with store._use("restore a record") as conn:
            conn.execute("UPDATE records SET state = 0, body = ? WHERE seq = ?",
                         (live.encrypt(plain, row[1].encode()), row[0]))
        result.recovered += 1
    with store._use("forget salvaged journals") as conn:
        conn.execute("DELETE FROM journals WHERE name = 'salvage'")
    return result


def _existing_ids(store: Store) -> set[str]:
    with store._use("read record ids") as conn:
        return {r[0] for r in conn.execute("SELECT record_id FROM records")}


def _decrypt(blob: bytes, aad: bytes, ciphers: list[FieldCipher]) -> bytes | None:
    for cipher in ciphers:
        try:
            return cipher.decrypt(blob, aad)
        except CreditCheckError:
            continue
    return None


def _decode_frame(payload: bytes, ciphers: list[FieldCipher]) -> dict[str, Any] | None:
    plain = _decrypt(payload, AAD, ciphers)
    if plain is None:
        return None
    try:
        return record_data(plain)
    except ValueError:
        return None


def _from_journal(source: Path, store: Store, ciphers: list[FieldCipher], hmac_key: bytes
                  ) -> Salvaged:
    result = Salvaged()
    existing = _existing_ids(store)
    rows = []
    now = time.time()
    for _, payload in read_frames(source):
        data = _decode_frame(payload, ciphers)
        if data is None:
            result.unreadable += 1
        elif data["record_id"] in existing:
            result.present += 1
        else:
            existing.add(data["record_id"])
            rows.append(store_row(data, hmac_key, ciphers[0], now=now))
            result.recovered += 1
    if rows:
        store.import_rows("salvage", 0, rows)
        with store._use("forget salvaged journals") as conn:
            conn.execute("DELETE FROM journals WHERE name = 'salvage'")
    return result


def _from_store_copy(source: Path, store: Store, ciphers: list[FieldCipher]) -> Salvaged:
    result = Salvaged()
    existing = _existing_ids(store)
    live = ciphers[0]
    try:
        conn = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot open {source} as an outbox copy: {exc}") from exc
    try:
        for row in _readable_rows(conn):
            (_, record_id, kind, decision_id, case_id, scenario, outcome, created_at, state,
             dead_reason, mac, blob) = row
            if record_id in existing:
                result.present += 1
                continue
            plain = _decrypt(bytes(blob), record_id.encode(), ciphers)
            if plain is None:
                result.unreadable += 1
                continue
            state = 0 if state == 3 else state  # readable now: deliver it
            with store._use("restore a record") as live_conn:
                live_conn.execute(
                    "INSERT INTO records (record_id, kind, decision_id, case_id, scenario, "
                    "outcome, created_at, added_at, state, dead_reason, hmac, body, "
                    "delivered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (record_id, kind, decision_id, case_id, scenario, outcome, created_at,
                     time.time(), state, dead_reason, mac,
                     live.encrypt(plain, record_id.encode()),
                     time.time() if state == 1 else None))
            existing.add(record_id)
            result.recovered += 1
    finally:
        conn.close()
    return result


def _readable_rows(conn: sqlite3.Connection) -> Iterator[tuple[Any, ...]]:
    # Damaged pages make some reads fail: read by seq ranges and bisect a failing range
    # down to single rows, so every row on an intact page is recovered.
    try:
        (low, high) = conn.execute("SELECT MIN(seq), MAX(seq) FROM records").fetchone()
    except sqlite3.DatabaseError:
        low, high = 1, _max_seq_guess(conn)
    if low is None:
        return
    stack = [(int(low), int(high))]
    budget = MAX_QUERIES
    while stack and budget:
        budget -= 1
        a, b = stack.pop()
        try:
            rows = conn.execute(f"SELECT {_ROWS} FROM records WHERE seq BETWEEN ? AND ? "  # noqa: S608
                                "ORDER BY seq", (a, b)).fetchall()
        except sqlite3.DatabaseError:
            if a < b:
                mid = (a + b) // 2
                stack += [(mid + 1, b), (a, mid)]
            continue
        yield from rows


def _max_seq_guess(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        return int(row[0]) if row else 0
    except sqlite3.DatabaseError:
        return 10_000_000
