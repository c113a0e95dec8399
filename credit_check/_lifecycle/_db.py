"""Where the lifecycle keeps its tables: a SQLite file in the data directory, shared by the
processes of that directory, or the outbox's PostgreSQL database (``CREDIT_CHECK_OUTBOX_URL``)
shared by every host. One set of statements serves both (``?`` placeholders, ``ON
CONFLICT``); only the column types differ.

Personal data never lies in clear here: a decision's record (subject id, name, matches) is
one AES-GCM blob, and the columns that find rows by an identifier hold keyed hashes.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from credit_check._exceptions import OutboxError
from credit_check._pg import Database, lock_key
from credit_check._sqlite_file import SQLiteFile

T = TypeVar("T")
LIFECYCLE_FILE = "lifecycle.sqlite3"
SCHEMA_VERSION = 1
_SCHEMA_LOCK = lock_key("credit-check/lifecycle-schema")

# {blob} {big} {real} {serial}: the engine's column types. The match step reads the open
# watches from the covering index alone: the rows themselves hold the sealed records.
_TABLES = """
CREATE TABLE IF NOT EXISTS credit_check_lc_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS credit_check_watch (
    decision_id TEXT PRIMARY KEY,
    case_id TEXT,
    prefix {big} NOT NULL,
    state INTEGER NOT NULL,
    flagged INTEGER NOT NULL DEFAULT 0,
    degraded INTEGER NOT NULL DEFAULT 0,
    listed INTEGER NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL,
    decided_at TEXT NOT NULL,
    watch_until {real},
    keep_until {real} NOT NULL,
    baseline {blob} NOT NULL
);
CREATE INDEX IF NOT EXISTS credit_check_watch_case ON credit_check_watch (case_id);
CREATE INDEX IF NOT EXISTS credit_check_watch_open ON credit_check_watch
    (state, degraded, prefix, flagged, listed, decision_id);
CREATE TABLE IF NOT EXISTS credit_check_watch_entry (
    entry_key {blob} NOT NULL,
    decision_id TEXT NOT NULL,
    PRIMARY KEY (entry_key, decision_id)
);
CREATE TABLE IF NOT EXISTS credit_check_case (
    case_id TEXT PRIMARY KEY,
    opened_at TEXT NOT NULL,
    closed_at TEXT
);
CREATE TABLE IF NOT EXISTS credit_check_lift (
    entry_id TEXT PRIMARY KEY,
    seen_at {real} NOT NULL
);
CREATE TABLE IF NOT EXISTS credit_check_event (
    seq {serial},
    decision_id TEXT NOT NULL,
    case_id TEXT,
    kind TEXT NOT NULL,
    previous TEXT NOT NULL,
    outcome TEXT NOT NULL,
    record_id TEXT NOT NULL UNIQUE,
    at TEXT NOT NULL,
    data {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS credit_check_commitment (
    commitment_id TEXT PRIMARY KEY,
    decision_id TEXT NOT NULL,
    case_id TEXT,
    subject_key {blob} NOT NULL,
    state INTEGER NOT NULL,
    due TEXT NOT NULL,
    created_at TEXT NOT NULL,
    data {blob} NOT NULL
);
CREATE INDEX IF NOT EXISTS credit_check_commitment_open ON credit_check_commitment (state, due);
CREATE INDEX IF NOT EXISTS credit_check_commitment_subject
    ON credit_check_commitment (subject_key);
"""
_SQLITE = {"blob": "BLOB", "big": "INTEGER", "real": "REAL",
           "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"}
_POSTGRES = {"blob": "BYTEA", "big": "BIGINT", "real": "DOUBLE PRECISION",
             "serial": "BIGSERIAL PRIMARY KEY"}


def _statements(types: dict[str, str]) -> list[str]:
    return [s.strip() for s in _TABLES.format(**types).split(";") if s.strip()]


class SQLiteTables(SQLiteFile):
    """The lifecycle tables in a SQLite file of the data directory; fork-safe (a child
    opens its own connection) and thread-safe (one lock around each transaction)."""

    what = "the watch list"

    def __init__(self, path: Path) -> None:
        self.shown = str(path)
        super().__init__(path)

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        for statement in _statements(_SQLITE):
            conn.execute(statement)
        conn.execute("INSERT INTO credit_check_lc_meta (name, value) VALUES "
                     "('schema_version', ?) ON CONFLICT (name) DO NOTHING",
                     (str(SCHEMA_VERSION),))
        conn.execute("COMMIT")
        os.chmod(self.path, 0o600)

    def run(self, what: str, work: Callable[[Any], T]) -> T:
        """``work(conn)`` in one write transaction.

        Raises:
            OutboxError: the database cannot be read or written.
        """
        with self._lock:
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = work(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot {what} ({self.shown}): {exc}") from exc


class PgTables:
    """The lifecycle tables in the outbox's PostgreSQL database (made once, under an
    advisory lock)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.shown = db.shown

        def make(conn: Any) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
            for statement in _statements(_POSTGRES):
                conn.execute(statement)
            conn.execute("INSERT INTO credit_check_lc_meta (name, value) VALUES "
                         "('schema_version', ?) ON CONFLICT (name) DO NOTHING",
                         (str(SCHEMA_VERSION),))

        self.run("create the watch list", make)

    def run(self, what: str, work: Callable[[Any], T]) -> T:
        """``work(conn)`` in one transaction (repeated on a lost connection).

        Raises:
            OutboxError: the database cannot be read or written.
        """
        try:
            return self.db.run(work, begin="BEGIN")
        except OutboxError:
            raise
        except Exception as exc:
            raise OutboxError(f"cannot {what} ({self.shown}): {self.db.message(exc)}") from exc

    def reset_lock(self) -> None:
        """Nothing to reset: the pool is per process."""

    def close(self) -> None:
        """The database is closed by its owner."""


Tables = SQLiteTables | PgTables


def open_tables(directory: Path, db: Database | None) -> Tables:
    """The lifecycle tables beside the records: in the outbox's PostgreSQL database when
    there is one (``db``), else in the data directory.

    Raises:
        OutboxError: they cannot be opened or made.
    """
    return PgTables(db) if db is not None else SQLiteTables(directory / LIFECYCLE_FILE)
