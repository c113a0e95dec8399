"""The :class:`~credit_check._server._store.Store` on PostgreSQL: any number of stateless
service instances on one database answer as one service.

Writes that change the prefix set lock the ``version`` row (``SELECT … FOR UPDATE``), catch
up first and record their delta in the same transaction, as on SQLite; each instance
catches its in-memory prefix set up from those deltas in a ``REPEATABLE READ`` snapshot.
Readers never wait for writers (MVCC), so a large import — loaded with ``COPY`` — does not
hold up lookups on any instance. A lost connection is retried for a bounded time; after
that a request is answered 503.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from credit_check._crypto import FieldCipher, Signer, api_key_hash, feedback_key
from credit_check._models import Catalog, EntryStatus, ListEntry
from credit_check._pg import Conn, Database
from credit_check._server import _catalog_forms, _entries, _relations, _signing_keys
from credit_check._server._catalog_forms import required_schema, stored_form
from credit_check._server._entries import Change
from credit_check._server._feed import FeedbackTable, insert_feedback, read_page, sealed_rows
from credit_check._server._personal import PersonalData
from credit_check._server._pg_schema import open_schema
from credit_check._server._prefix_index import PrefixIndex, pack, unpack
from credit_check._server._relations import Reach
from credit_check._server._schema import INSERT_ENTRY, INSERT_SUBJECT, set_meta
from credit_check._server._store import (
    COUNTING,
    LIFTING_REASON,
    EntryRow,
    FeedbackPage,
    Head,
    Intake,
    SerialConflict,
    StatsQuery,
    Store,
    StoredCatalog,
    StoreError,
    StoreUnavailable,
    SubjectRow,
    entry_row,
    now_cst,
)
from credit_check._server._tables import KEPT_DELTAS, SharedReads

logger = logging.getLogger("credit_check.sandbox")

R = TypeVar("R")
SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
# Any constant that no other application on the database uses as an advisory lock key.
FEEDBACK_LOCK = 0x63632D6662  # "cc-fb"
# Fewer rows than this are upserted with executemany; more go through COPY.
COPY_FROM = 500
ANALYZE_FROM = 50_000
_BULK = {
    "entries": ("entry_id, subject_key, subject_kind, subject_prefix, rep_key, rep_prefix, "
                "list_code, status, sealed, data", INSERT_ENTRY),
    "subjects": ("subject_key, kind, prefix, name, rep_key, personal, clean_since",
                 INSERT_SUBJECT),
}


def bulk_upsert(conn: Conn, table: str, rows: list[tuple[Any, ...]]) -> None:
    """Upsert many stored rows: ``COPY`` into a temporary table, then one ``INSERT …
    SELECT … ON CONFLICT`` (a repeated key: the last row wins, as with executemany)."""
    columns, insert = _BULK[table]
    if len(rows) < COPY_FROM:
        conn.executemany(insert, rows)
        return
    latest = {row[0]: row for row in rows}
    conflict = insert.split(" ON CONFLICT ", 1)[1]
    conn.execute(f"CREATE TEMP TABLE import_{table} (LIKE {table}) ON COMMIT DROP")
    conn.copy_rows(f"import_{table}", columns, latest.values())
    conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM import_{table} "  # noqa: S608
                 f"ON CONFLICT {conflict}")
    conn.execute(f"DROP TABLE import_{table}")
    if len(latest) >= ANALYZE_FROM:
        # Fresh statistics, so that lookups right after a large first import are planned
        # for the table as it now is rather than waiting for autovacuum.
        conn.execute(f"ANALYZE {table}")


def _all_contributions(conn: Conn, reach: Reach) -> Iterator[int]:
    # As _entries.all_contributions, streamed: ten million rows are never held at once.
    rep_lists = reach.rep_lists
    for subject_prefix, rep_prefix, list_code in conn.stream(
            "SELECT subject_prefix, rep_prefix, list_code FROM entries WHERE status IN (?, ?)",
            COUNTING):
        yield subject_prefix
        if rep_prefix is not None and list_code in rep_lists:
            yield rep_prefix
    yield from _entries.relation_contributions(conn, reach)


class _Rows:
    """Fetched rows with the cursor methods the shared SQL code calls."""

    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows
        self._at = 0

    def fetchone(self) -> Any:
        row = self._rows[self._at] if self._at < len(self._rows) else None
        self._at += 1
        return row

    def fetchmany(self, size: int) -> list[Any]:
        rows = self._rows[self._at : self._at + size]
        self._at += size
        return rows

    def fetchall(self) -> list[Any]:
        rows = self._rows[self._at :]
        self._at = len(self._rows)
        return rows


class _AutoCommit:
    """One statement at a time, each on a pooled connection, retried when it is lost."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    def execute(self, statement: str, params: Any = ()) -> _Rows:
        def work(conn: Conn) -> _Rows:
            cur = conn.execute(statement, params)
            return _Rows(cur.fetchall() if cur.description else [])

        return self._store._run(work, begin=None)


class PostgresStore(FeedbackTable, SharedReads, Store):
    """All sandbox state in one PostgreSQL database, shared by any number of instances.

    Args:
        url: ``postgresql://user:password@host:port/dbname``.
        signer: the service's signing key, the same for every instance (it is recorded
            by its public key: an instance with another key is refused).
        personal: keyed hashing and sealing with the data key, the same for every instance.
        pool_size: connections this process opens at most.
        retry_for: seconds a lost connection is retried before a request fails.

    Raises:
        ConfigurationError: the database cannot be reached (the message names the URL
            without its password), has a schema of another version, or was made with
            another data key or signing key.
    """

    def __init__(self, url: str, signer: Signer, personal: PersonalData, *,
                 pool_size: int = 10, retry_for: float = 10.0) -> None:
        self.personal = personal
        self.signer = signer
        self._seal = FieldCipher(hmac.new(signer.private_bytes(), b"credit-check/sandbox/keys",
                                          hashlib.sha256).digest())
        # A request waits for a connection no longer than it would retry a lost one.
        self._db = Database(url, what="sandbox database", max_size=pool_size,
                            timeout=max(0.5, min(5.0, retry_for)), retry_for=retry_for)
        self.path = self._db.shown
        self.index = PrefixIndex(signer)
        self._catalogs: dict[int, StoredCatalog] = {}
        self._current: StoredCatalog | None = None
        self._reach = Reach()
        self._head = Head(0, 0, 0)
        self._checked = 0.0
        checks = {"data_key_check": personal.check_value,
                  "signing_key_check": signer.public_key}
        try:
            self.schema_version = self._run(
                lambda conn: self._open(conn, checks, signer.public_key, personal))
            self.refresh()
        except BaseException:
            self._db.close()
            raise

    # -- plumbing ----------------------------------------------------------------------

    def _run(self, work: Callable[[Conn], R], *, begin: str | None = "BEGIN") -> R:
        import psycopg

        try:
            return self._db.run(work, begin=begin)
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"the sandbox database {self._db.shown} failed: {self._db.message(exc)}"
            ) from exc

    def _conn(self) -> Any:
        return _AutoCommit(self)

    def _open(self, conn: Conn, checks: dict[str, str], public_key: str,
              personal: PersonalData) -> int:
        version = open_schema(conn, self._db.shown, checks, personal)
        # Under open_schema's lock: instances starting together make the table once.
        _signing_keys.ensure(conn, public_key)
        return version

    def _tx(self) -> Any:  # FeedbackTable's writes go through add_feedback below
        raise NotImplementedError

    def close(self) -> None:
        self._db.close()

    def claim(self, name: str) -> bool:
        return bool(self._conn().execute(
            "INSERT INTO meta (name, value) VALUES (?, '1') ON CONFLICT (name) DO NOTHING "
            "RETURNING name", (name,)).fetchone())

    # -- freshness ---------------------------------------------------------------------

    def refresh(self, max_age: float = 0.0) -> Head:
        now = time.monotonic()
        if max_age and now - self._checked < max_age:
            return self._head
        # The snapshot is taken after the lock: it sees at least what the index holds.
        with self.index.lock:
            head = self._run(self._catch_up, begin=SNAPSHOT)
            self._checked = now
            return head

    def _catch_up(self, conn: Conn) -> Head:
        meta = dict(conn.execute("SELECT name, value FROM meta WHERE name IN "
                                 "('version', 'catalog_serial', 'epoch')").fetchall())
        head = Head(int(meta["version"]), int(meta["catalog_serial"]), int(meta["epoch"]))
        with self.index.lock:
            if head.catalog_serial != (self._current.serial if self._current else 0):
                self._current = self._load_catalog(conn, head.catalog_serial)
                self._reach = Reach.of(self._current.catalog if self._current else None)
            have = self.index.version
            # A lower version than ours: the database was restored from a backup; rebuild.
            if head.version != have:
                rows = conn.execute("SELECT version, rebuild, plus, minus FROM deltas WHERE "
                                    "version > ? AND version <= ? ORDER BY version",
                                    (have, head.version)).fetchall()
                if have and len(rows) == head.version - have and not any(r[1] for r in rows):
                    for version, _, plus, minus in rows:
                        self.index.apply(unpack(minus), unpack(plus), version)
                else:
                    self.index.reset(_all_contributions(conn, self._reach), head.version)
            self._head = head
        return head

    def raise_epoch(self) -> int:
        row = self._conn().execute(
            "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) "
            "WHERE name = 'epoch' RETURNING value").fetchone()
        self.refresh()
        return int(row[0])

    def _versioned(self, body: Callable[[Conn, Change], R]) -> R:
        """A write that makes a new snapshot version, with its delta in the same
        transaction; writers on every instance queue on the ``version`` row."""

        def work(conn: Conn) -> R:
            conn.execute("SELECT value FROM meta WHERE name = 'version' FOR UPDATE")
            head = self._catch_up(conn)
            change = Change()
            result = body(conn, change)
            if change.skip:
                return result
            version = head.version + 1
            if change.rebuild:
                conn.execute("INSERT INTO deltas (version, rebuild, created_at) VALUES "
                             "(?, 1, ?)", (version, now_cst().isoformat()))
            else:
                added, removed, present = self.index.preview(change.minus, change.plus)
                changed = (change.touched & present) - added
                conn.execute(
                    "INSERT INTO deltas (version, rebuild, plus, minus, added, removed, "
                    "changed, lifted, created_at) VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?)",
                    (version, pack(change.plus), pack(change.minus), pack(added),
                     pack(removed), pack(changed), json.dumps(sorted(change.lifted)),
                     now_cst().isoformat()))
            conn.execute("DELETE FROM deltas WHERE version <= ?", (version - KEPT_DELTAS,))
            set_meta(conn, "version", str(version))
            return result

        result = self._run(work)
        self.refresh()
        return result

    # -- catalogue ---------------------------------------------------------------------

    def _load_catalog(self, conn: Any, serial: int) -> StoredCatalog | None:
        if serial == 0:
            return None
        known = self._catalogs.get(serial)
        if known is not None:
            return known
        row = conn.execute("SELECT serial, schema, data FROM catalogs WHERE serial = ?",
                           (serial,)).fetchone()
        if row is None:
            return None
        raw = json.loads(row[2])
        stored = StoredCatalog(Catalog.load(raw), raw, int(row[0]), int(row[1]))
        self._catalogs[serial] = stored
        return stored

    def catalog(self, schema: int | None = None) -> StoredCatalog | None:
        current = self._current
        if current is None or schema is None or current.schema <= schema:
            return current

        def work(conn: Conn) -> StoredCatalog | None:
            row = conn.execute("SELECT MAX(serial) FROM catalogs WHERE schema <= ?",
                               (schema,)).fetchone()
            if row is None or row[0] is None:
                return None
            return self._load_catalog(conn, int(row[0]))

        return self._run(work, begin=None)

    def put_catalog(self, catalog: Catalog, *, serial: int | None = None,
                    schema: int | None = None, if_none: bool = False
                    ) -> tuple[StoredCatalog, int]:
        schema = required_schema(catalog) if schema is None else schema
        raw = stored_form(catalog, schema)

        def body(conn: Conn, change: Change) -> None:
            current = self._head.catalog_serial
            if if_none and current:
                change.skip = True
                return
            if serial is not None and serial <= current:
                raise SerialConflict(
                    f"serial {serial} is not above the current catalogue's serial "
                    f"{current}: a catalogue serial only increases (leave it out and the "
                    "service assigns the next one)")
            new = current + 1 if serial is None else serial
            conn.execute("INSERT INTO catalogs (serial, version, schema, data, created_at) "
                         "VALUES (?, ?, ?, ?, ?)", (new, catalog.version, schema,
                                                    json.dumps(raw, ensure_ascii=False),
                                                    now_cst().isoformat()))
            set_meta(conn, "catalog_serial", str(new))
            change.rebuild = True  # which representatives are in the set depends on it

        self._versioned(body)
        stored = self._current
        assert stored is not None
        return stored, self._head.version

    def stage_catalog(self, catalog: Catalog | None) -> StoredCatalog | None:
        return self._run(lambda conn: _catalog_forms.stage(conn, catalog))

    # -- entries -----------------------------------------------------------------------

    def upsert(self, rows: list[EntryRow], subjects: Iterable[SubjectRow] = (), *,
               once: str | None = None,
               relations: Mapping[str, Sequence[tuple[str, str, str | None]]] | None = None
               ) -> dict[str, int]:
        subject_rows = list(subjects)

        def body(conn: Conn, change: Change) -> tuple[int, int]:
            if once is not None:
                if conn.execute("SELECT 1 FROM meta WHERE name = ?", (once,)).fetchone():
                    change.skip = True
                    return 0, 0
                set_meta(conn, once, "1")
            current = self._current
            if current is not None:
                known = {d.code for d in current.catalog.lists}
                for i, row in enumerate(rows):
                    if row[4] not in known:
                        raise StoreError(f"entries[{i}] ({row[0]}): list_code {row[4]!r} is "
                                         "not a list of the current catalogue")
            written = _entries.write(conn, self.personal, self._reach, rows, subject_rows,
                                     change, bulk=bulk_upsert)
            if relations:
                _relations.replace(conn, self.personal, relations)
                change.rebuild = True  # rare (an admin import): the set is rebuilt
            return written

        created, updated = self._versioned(body)
        return {"created": created, "updated": updated, "version": self._head.version}

    def set_status(self, entry_id: str, status: EntryStatus,
                   effective_until: dt.datetime | None, reason: str | None = None
                   ) -> ListEntry:
        def body(conn: Conn, change: Change) -> ListEntry:
            text = _entries.read_entry(conn, self.personal, entry_id)
            if text is None:
                raise KeyError(entry_id)
            changes: dict[str, Any] = {"status": status}
            if effective_until is not None:
                changes["effective_until"] = effective_until
            new = ListEntry.model_validate_json(text).model_copy(update=changes)
            _entries.write(conn, self.personal, self._reach, [entry_row(new)], (), change)
            if status is EntryStatus.REMOVED and reason == LIFTING_REASON:
                change.lifted.add(entry_id)
            return new

        return self._versioned(body)

    def lookup(self, subject_id: str, kind: str, *, persons: bool, history: bool
               ) -> dict[str, Any]:
        head = self.refresh(max_age=0.5)
        return self._run(lambda conn: _entries.lookup(
            conn, self.personal, subject_id, kind, persons=persons, history=history,
            version=head.version), begin=None)

    # -- snapshot ----------------------------------------------------------------------

    # -- keys --------------------------------------------------------------------------

    def create_key(self, department: str, allow_persons: bool,
                   api_key: str | None = None) -> dict[str, Any]:
        api_key = api_key or "cc_" + secrets.token_urlsafe(32)
        key_id = "k_" + secrets.token_hex(6)
        self._conn().execute(
            "INSERT INTO keys (key_id, department, key_hash, feedback_key, allow_persons, "
            "revoked, created_at) VALUES (?, ?, ?, ?, ?, 0, ?) ON CONFLICT (key_hash) "
            "DO NOTHING", (key_id, department, api_key_hash(api_key),
                           self._seal.encrypt(feedback_key(api_key)).hex(),
                           int(allow_persons), now_cst().isoformat()))
        return {"key_id": key_id, "department": department, "api_key": api_key,
                "allow_persons": allow_persons}

    def revoke_key(self, key_id: str) -> bool:
        return bool(self._conn().execute(
            "UPDATE keys SET revoked = 1 WHERE key_id = ? RETURNING key_id", (key_id,)
        ).fetchall())

    # -- feedback ----------------------------------------------------------------------

    def add_feedback(self, records: list[Intake]) -> tuple[list[str], list[str]]:
        if not records:
            return [], []
        rows = sealed_rows(self.personal, records)

        def work(conn: Conn) -> tuple[list[str], list[str]]:
            # Inserts queue here, so records commit in the order of their seq: a reader
            # paging by seq never passes a record that commits later with a lower seq.
            conn.execute("SELECT pg_advisory_xact_lock(?)", (FEEDBACK_LOCK,))
            return insert_feedback(conn, records, rows, arrays=True)

        return self._run(work)

    def feedback_page(self, since: str | None, after: int, limit: int) -> FeedbackPage:
        return self._run(lambda conn: read_page(conn, self.personal, since, after, limit),
                         begin=None)

    def stats(self, query: StatsQuery | None = None) -> dict[str, Any]:
        head = self.refresh()

        def work(conn: Conn) -> dict[str, Any]:
            out = self._feedback_stats(conn, query or StatsQuery())
            row = conn.execute("SELECT COUNT(*) FROM entries").fetchone()
            out["entries"] = int(row[0]) if row else 0
            return out

        out = self._run(work, begin=SNAPSHOT)
        out["listed_prefixes"] = len(self.index)
        out["version"] = head.version
        return out

    # -- signing keys and health -------------------------------------------------------

    def signing_keys(self) -> list[dict[str, Any]]:
        return self._run(_signing_keys.listed)

    def rotate_signing_key(self, new: Signer) -> bool:
        def work(conn: Conn) -> bool:
            rotated = _signing_keys.rotate(conn, self.signer, new)
            # Instances then start only with the new key (open_schema checks it).
            set_meta(conn, "signing_key_check", new.public_key)
            return rotated

        return self._run(work)

    def ping(self) -> None:
        self._run(lambda conn: conn.execute("SELECT 1").fetchone())

