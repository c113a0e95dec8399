"""The sandbox's schema on PostgreSQL: the same tables as on SQLite (``_schema``) in plain
SQL that PostgreSQL-protocol databases take, made once under an advisory lock by whichever
instance opens an empty database first, with its version recorded in ``meta``.
"""

from __future__ import annotations

from typing import Any

from credit_check._exceptions import ConfigurationError
from credit_check._server._personal import PersonalData
from credit_check._server._schema import FEEDBACK_V3, migrate_v2, set_meta
from credit_check._server._store import SCHEMA_VERSION

# Any constant that no other application on the database uses as an advisory lock key.
SCHEMA_LOCK = 0x63632D7367  # "cc-sg"

# Keys ordered or compared as text use the "C" collation, so that every instance (and
# SQLite) orders them byte by byte, whatever the database's locale.
TABLES = [
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE entries (
        entry_id TEXT COLLATE "C" PRIMARY KEY, subject_key TEXT NOT NULL,
        subject_kind TEXT NOT NULL, subject_prefix BIGINT NOT NULL, rep_key TEXT,
        rep_prefix BIGINT, list_code TEXT NOT NULL, status TEXT NOT NULL,
        sealed INTEGER NOT NULL, data BYTEA NOT NULL)""",
    "CREATE INDEX entries_subject ON entries (subject_key)",
    "CREATE INDEX entries_rep ON entries (rep_key) WHERE rep_key IS NOT NULL",
    """CREATE TABLE subjects (
        subject_key TEXT PRIMARY KEY, kind TEXT NOT NULL, prefix BIGINT NOT NULL, name TEXT,
        rep_key TEXT, personal BYTEA, clean_since TEXT)""",
    "CREATE INDEX subjects_rep ON subjects (rep_key) WHERE rep_key IS NOT NULL",
    """CREATE TABLE keys (
        key_id TEXT PRIMARY KEY, department TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
        feedback_key TEXT NOT NULL, allow_persons INTEGER NOT NULL, revoked INTEGER NOT NULL,
        created_at TEXT NOT NULL)""",
    # record_id UNIQUE: feedback is de-duplicated by the database, across instances.
    """CREATE TABLE feedback (
        seq BIGSERIAL PRIMARY KEY, record_id TEXT NOT NULL UNIQUE,
        department TEXT COLLATE "C" NOT NULL, kind TEXT NOT NULL,
        scenario TEXT COLLATE "C", outcome TEXT, hits INTEGER NOT NULL,
        measures INTEGER NOT NULL, day TEXT COLLATE "C" NOT NULL,
        received_at TEXT COLLATE "C" NOT NULL, data BYTEA NOT NULL, region TEXT COLLATE "C",
        degraded INTEGER NOT NULL DEFAULT 0, case_key TEXT)""",
    *FEEDBACK_V3,
    """CREATE TABLE catalogs (
        serial BIGINT PRIMARY KEY, version TEXT NOT NULL, schema INTEGER NOT NULL,
        data TEXT NOT NULL, created_at TEXT NOT NULL)""",
    """CREATE TABLE deltas (
        version BIGINT PRIMARY KEY, rebuild INTEGER NOT NULL, plus BYTEA, minus BYTEA,
        added BYTEA, removed BYTEA, changed BYTEA, lifted TEXT, created_at TEXT NOT NULL)""",
]


def schema_version(conn: Any) -> int:
    """0 for a database without our tables, else the recorded version."""
    row = conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = "
                       "current_schema() AND table_name = 'meta'").fetchone()
    if row is None:
        return 0
    found = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    return 0 if found is None else int(found[0])


def open_schema(conn: Any, shown: str, checks: dict[str, str],
                personal: PersonalData | None = None) -> int:
    """Create the schema in an empty database, or check an existing one (inside the
    caller's transaction, which holds the schema lock).

    Args:
        shown: the database URL without its password, for messages.
        checks: meta values that must match (the data key's and the signing key's check
            values), recorded when the schema is created.
        personal: the data key, to migrate a schema-2 database (its sealed feedback is
            read once); without it such a database is refused.

    Raises:
        ConfigurationError: a newer schema, or a key that is not the database's.
    """
    conn.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
    found = schema_version(conn)
    if found == 0:
        for statement in TABLES:
            conn.execute(statement)
        for name, value in (("schema_version", str(SCHEMA_VERSION)), ("version", "1"),
                            ("epoch", "1"), ("catalog_serial", "0"), *checks.items()):
            set_meta(conn, name, value)
        return SCHEMA_VERSION
    migrate = found == 2 and personal is not None
    if found != SCHEMA_VERSION and not migrate:
        raise ConfigurationError(
            f"{shown}: the database has sandbox schema {found}; this credit-check uses "
            f"schema {SCHEMA_VERSION} on PostgreSQL"
            + (" — upgrade credit-check" if found > SCHEMA_VERSION else ""))
    what = {"data_key_check": "the sandbox data key (--data-key FILE, "
                              "CREDIT_CHECK_SANDBOX_DATA_KEY_FILE or "
                              "CREDIT_CHECK_SANDBOX_DATA_KEY)",
            "signing_key_check": "the signing key (--signing-key FILE or "
                                 "CREDIT_CHECK_SIGNING_KEY_FILE)"}
    for name, value in checks.items():
        row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        if row is None:
            set_meta(conn, name, value)
        elif row[0] != value:
            raise ConfigurationError(
                f"{shown}: {what.get(name, name)} is not the one this database was made "
                "with; give every instance the same key")
    if migrate:
        assert personal is not None
        # Under the schema lock: one instance migrates, the others then find schema 3.
        migrate_v2(conn, personal)
    return SCHEMA_VERSION
