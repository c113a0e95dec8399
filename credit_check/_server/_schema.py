"""The sandbox's SQLite schema, its recorded version (``meta.schema_version``) and the
migration of an older database, done once by whichever process opens it first.

Version 1 (wave 1) had no recorded version; it kept natural persons' ids, names and
feedback records in clear. Version 2 indexes persons by a keyed hash, seals what names a
person, keeps catalogues by serial and the deltas of each snapshot version.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from typing import Any

from credit_check._crypto import id_prefix
from credit_check._models import ListEntry
from credit_check._server._feed import backfill_facts
from credit_check._server._personal import PersonalData
from credit_check._server._store import CATALOG_SCHEMA, SCHEMA_VERSION, entry_row, now_cst

logger = logging.getLogger("credit_check.sandbox")

# Schema 3: what the monitoring stats need beside the feedback table (its new columns are
# in TABLES, and added by migrate_v2).
FEEDBACK_V3 = [
    "CREATE TABLE feedback_codes (seq BIGINT NOT NULL, what TEXT NOT NULL, code TEXT NOT NULL)",
    "CREATE INDEX feedback_codes_seq ON feedback_codes (seq)",
    "CREATE INDEX feedback_case ON feedback (case_key) WHERE case_key IS NOT NULL",
    "CREATE INDEX feedback_kind_day ON feedback (kind, day)",
]
FEEDBACK_V3_COLUMNS = ["ALTER TABLE feedback ADD COLUMN region TEXT",
                       "ALTER TABLE feedback ADD COLUMN degraded INTEGER NOT NULL DEFAULT 0",
                       "ALTER TABLE feedback ADD COLUMN case_key TEXT"]

TABLES = [
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # subject_key: an organisation's USCC, or p:<keyed hash> of a person's id number;
    # data: the entry's JSON, sealed (sealed = 1) when it names a natural person.
    """CREATE TABLE entries (
        entry_id TEXT PRIMARY KEY, subject_key TEXT NOT NULL, subject_kind TEXT NOT NULL,
        subject_prefix BIGINT NOT NULL, rep_key TEXT, rep_prefix BIGINT,
        list_code TEXT NOT NULL, status TEXT NOT NULL, sealed INTEGER NOT NULL,
        data BLOB NOT NULL)""",
    "CREATE INDEX entries_subject ON entries (subject_key)",
    "CREATE INDEX entries_rep ON entries (rep_key) WHERE rep_key IS NOT NULL",
    # name: an organisation's (public); personal: sealed JSON, a person's {"name"} or an
    # organisation's {"rep_id"}.
    """CREATE TABLE subjects (
        subject_key TEXT PRIMARY KEY, kind TEXT NOT NULL, prefix BIGINT NOT NULL, name TEXT,
        rep_key TEXT, personal BLOB, clean_since TEXT)""",
    "CREATE INDEX subjects_rep ON subjects (rep_key) WHERE rep_key IS NOT NULL",
    """CREATE TABLE keys (
        key_id TEXT PRIMARY KEY, department TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
        feedback_key TEXT NOT NULL, allow_persons INTEGER NOT NULL, revoked INTEGER NOT NULL,
        created_at TEXT NOT NULL)""",
    # data: the record as sent, sealed; only non-personal columns in clear (case_key: a
    # keyed hash of the department and the case, for the coverage figures).
    """CREATE TABLE feedback (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, record_id TEXT NOT NULL UNIQUE,
        department TEXT NOT NULL, kind TEXT NOT NULL, scenario TEXT, outcome TEXT,
        hits INTEGER NOT NULL, measures INTEGER NOT NULL, day TEXT NOT NULL,
        received_at TEXT NOT NULL, data BLOB NOT NULL, region TEXT,
        degraded INTEGER NOT NULL DEFAULT 0, case_key TEXT)""",
    *FEEDBACK_V3,
    """CREATE TABLE catalogs (
        serial INTEGER PRIMARY KEY, version TEXT NOT NULL, schema INTEGER NOT NULL,
        data TEXT NOT NULL, created_at TEXT NOT NULL)""",
    # One row per snapshot version: the reference-count changes (plus, minus) that made
    # it, and what a client is told (added, removed, changed, lifted). rebuild = 1: the
    # set was rebuilt (a catalogue change), so no delta spans this version.
    """CREATE TABLE deltas (
        version INTEGER PRIMARY KEY, rebuild INTEGER NOT NULL, plus BLOB, minus BLOB,
        added BLOB, removed BLOB, changed BLOB, lifted TEXT, created_at TEXT NOT NULL)""",
]


def schema_version(conn: sqlite3.Connection) -> int:
    """0 for an empty database, 1 for a wave-1 one, else the recorded version."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in names:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    return 1 if row is None else int(row[0])


def set_meta(conn: Any, name: str, value: str) -> None:
    conn.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) "
                 "DO UPDATE SET value = excluded.value", (name, value))


def create(conn: sqlite3.Connection, personal: PersonalData) -> None:
    """Create the current schema in an empty database (inside the caller's transaction)."""
    for statement in TABLES:
        conn.execute(statement)
    for name, value in (("schema_version", str(SCHEMA_VERSION)), ("version", "1"),
                        ("epoch", "1"), ("catalog_serial", "0"),
                        ("data_key_check", personal.check_value)):
        set_meta(conn, name, value)


def migrate_v1(conn: sqlite3.Connection, personal: PersonalData) -> None:
    """Bring a wave-1 database to the current schema, keeping every entry, subject, key
    and feedback record (inside the caller's transaction)."""
    for table in ("meta", "entries", "subjects", "keys", "feedback"):
        conn.execute(f"ALTER TABLE {table} RENAME TO old_{table}")
    # The old indexes keep their names on the renamed tables.
    conn.execute("DROP INDEX IF EXISTS entries_subject")
    conn.execute("DROP INDEX IF EXISTS entries_rep")
    create(conn, personal)
    old_meta = dict(conn.execute("SELECT name, value FROM old_meta").fetchall())
    for name in ("version", "duplicates", "demo_loaded"):
        if name in old_meta:
            set_meta(conn, name, old_meta[name])
    if old_meta.get("catalog"):
        catalog = json.loads(old_meta["catalog"])
        conn.execute("INSERT INTO catalogs (serial, version, schema, data, created_at) "
                     "VALUES (1, ?, ?, ?, ?)", (catalog["version"], CATALOG_SCHEMA,
                                                old_meta["catalog"], now_cst().isoformat()))
        set_meta(conn, "catalog_serial", "1")
    conn.execute("INSERT INTO keys SELECT * FROM old_keys")
    cursor = conn.execute("SELECT data FROM old_entries")
    while batch := cursor.fetchmany(2000):
        rows = [entry_row(ListEntry.model_validate_json(r[0])) for r in batch]
        conn.executemany(INSERT_ENTRY, [stored_entry(personal, row) for row in rows])
    subjects = conn.execute("SELECT id, kind, name, rep_id, clean_since FROM old_subjects")
    while batch := subjects.fetchmany(2000):
        conn.executemany(INSERT_SUBJECT, [stored_subject(personal, s) for s in batch])
    feedback = conn.execute(
        "SELECT record_id, department, kind, scenario, outcome, hits, measures, day, "
        "received_at, data FROM old_feedback ORDER BY seq")
    while batch := feedback.fetchmany(2000):
        conn.executemany(
            "INSERT INTO feedback (record_id, department, kind, scenario, outcome, hits, "
            "measures, day, received_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(*r[:9], personal.seal(r[9].encode(), f"feedback:{r[0]}")) for r in batch])
    for table in ("meta", "entries", "subjects", "keys", "feedback"):
        conn.execute(f"DROP TABLE old_{table}")
    backfill_facts(conn, personal)
    logger.warning("sandbox database migrated from schema 1 to %d: natural persons are now "
                   "indexed by a keyed hash and sealed, feedback records sealed",
                   SCHEMA_VERSION)


def migrate_v2(conn: Any, personal: PersonalData) -> None:
    """Bring a schema-2 database (SQLite or PostgreSQL) to schema 3: the feedback table's
    stats columns, filled from each sealed record (inside the caller's transaction)."""
    for statement in (*FEEDBACK_V3_COLUMNS, *FEEDBACK_V3):
        conn.execute(statement)
    count = backfill_facts(conn, personal)
    set_meta(conn, "schema_version", str(SCHEMA_VERSION))
    logger.warning("sandbox database migrated from schema 2 to %d: the stats columns of %d "
                   "feedback records filled", SCHEMA_VERSION, count)


INSERT_ENTRY = (
    "INSERT INTO entries (entry_id, subject_key, subject_kind, subject_prefix, rep_key, "
    "rep_prefix, list_code, status, sealed, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (entry_id) DO UPDATE SET subject_key = excluded.subject_key, "
    "subject_kind = excluded.subject_kind, subject_prefix = excluded.subject_prefix, "
    "rep_key = excluded.rep_key, rep_prefix = excluded.rep_prefix, "
    "list_code = excluded.list_code, status = excluded.status, sealed = excluded.sealed, "
    "data = excluded.data")

INSERT_SUBJECT = (
    "INSERT INTO subjects (subject_key, kind, prefix, name, rep_key, personal, clean_since) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (subject_key) DO UPDATE SET "
    "kind = excluded.kind, prefix = excluded.prefix, name = excluded.name, "
    "rep_key = excluded.rep_key, personal = excluded.personal, "
    "clean_since = excluded.clean_since")


def stored_entry(personal: PersonalData, row: tuple[str, str, str, str | None, str, str, str]
                 ) -> tuple[Any, ...]:
    """An entry row as stored: keyed, prefixed, its JSON sealed when it names a person."""
    entry_id, subject_id, kind, rep_id, list_code, status, data = row
    sealed = kind == "person" or rep_id is not None
    blob = (personal.seal(data.encode(), f"entry:{entry_id}") if sealed else data.encode())
    return (entry_id, personal.subject_key(subject_id, kind), kind, id_prefix(subject_id),
            personal.subject_key(rep_id) if rep_id else None,
            id_prefix(rep_id) if rep_id else None, list_code, status, int(sealed), blob)


def stored_subject(personal: PersonalData,
                   row: tuple[str, str, str | None, str | None, str | None]) -> tuple[Any, ...]:
    """A subject row as stored: a person's name, an organisation's representative sealed."""
    subject_id, kind, name, rep_id, clean_since = row
    key = personal.subject_key(subject_id, kind)
    private: dict[str, str] = {}
    if kind == "person":
        if name:
            private["name"] = name
        name = None
    if rep_id:
        private["rep_id"] = rep_id
    blob = (personal.seal(json.dumps(private, ensure_ascii=False).encode(), f"subject:{key}")
            if private else None)
    return (key, kind, id_prefix(subject_id), name,
            personal.subject_key(rep_id) if rep_id else None, blob, clean_since)
