"""The :class:`~credit_check._server._store.Store` on SQLite (WAL): one file that any
number of service processes share. Writes that change the prefix set take the database's
write lock (``BEGIN IMMEDIATE``), catch up first, and record their delta in the same
transaction; every process catches its in-memory prefix set up from those deltas.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from credit_check._crypto import FieldCipher, Signer, api_key_hash, feedback_key
from credit_check._exceptions import ConfigurationError
from credit_check._models import Catalog, EntryStatus, ListEntry
from credit_check._server import _catalog_forms, _entries, _relations, _schema, _signing_keys
from credit_check._server._catalog_forms import required_schema, stored_form
from credit_check._server._entries import Change
from credit_check._server._feed import FeedbackTable
from credit_check._server._personal import PersonalData
from credit_check._server._prefix_index import PrefixIndex, pack, unpack
from credit_check._server._relations import Reach
from credit_check._server._store import (
    LIFTING_REASON,
    SCHEMA_VERSION,
    EntryRow,
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

# A bulk import touches the subject index all over; a page cache that holds it (instead of
# SQLite's default 2 MB) keeps the import from re-reading pages. Only while importing.
IMPORT_CACHE_KIB = 256 * 1024


class SQLiteStore(FeedbackTable, SharedReads, Store):
    """All sandbox state in one SQLite file; safe to use from many threads and processes.

    Args:
        path: the database file.
        signer: the service's signing key (feedback HMAC keys are sealed with a key
            derived from it).
        personal: keyed hashing and sealing of natural persons' data.
    """

    def __init__(self, path: Path, signer: Signer, personal: PersonalData) -> None:
        self.path = path
        self.personal = personal
        self._seal = FieldCipher(hmac.new(signer.private_bytes(), b"credit-check/sandbox/keys",
                                          hashlib.sha256).digest())
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.index = PrefixIndex(signer)
        self._catalogs: dict[int, StoredCatalog] = {}
        self._current: StoredCatalog | None = None
        self._reach = Reach()
        self._head = Head(0, 0, 0)
        self._checked = 0.0
        self.schema_version = self._open_schema()
        self.signer = signer
        with self._tx() as conn:
            _signing_keys.ensure(conn, signer.public_key)
        self.refresh()

    # -- plumbing ----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # Freed pages are zeroed: nothing deleted lingers in the file.
            conn.execute("PRAGMA secure_delete=ON")
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append(conn)
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        # One read transaction: every query in it sees the same committed state.
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _open_schema(self) -> int:
        with self._tx() as conn:
            found = _schema.schema_version(conn)
            if found > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"{self.path}: the database has schema {found}, newer than this "
                    f"credit-check understands ({SCHEMA_VERSION}); upgrade credit-check")
            if found == 0:
                _schema.create(conn, self.personal)
            elif found == 1:
                _schema.migrate_v1(conn, self.personal)
            for statement in _relations.table("BLOB"):
                conn.execute(statement)  # added beside the schema: older versions ignore it
            check = conn.execute("SELECT value FROM meta WHERE name = 'data_key_check'"
                                 ).fetchone()
            if check is None or not hmac.compare_digest(check[0], self.personal.check_value):
                raise ConfigurationError(
                    f"{self.path}: the sandbox data key (CREDIT_CHECK_SANDBOX_DATA_KEY or "
                    f"{self.path.name}.data-key) is not the one this database was made "
                    "with; give the right key")
            if found == 2:  # after the key check: the migration opens sealed records
                _schema.migrate_v2(conn, self.personal)
        if found == 1:
            self._compact()
        return SCHEMA_VERSION

    def _compact(self) -> None:
        # After a migration, nothing of the old clear rows may stay in free pages or the WAL.
        conn = self._conn()
        try:
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as exc:
            logger.warning("sandbox database %s: could not compact after the migration (%s); "
                           "free pages may still hold old clear data", self.path, exc)

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._conns:
                conn.close()
            self._conns = []
        self._local = threading.local()

    def claim(self, name: str) -> bool:
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM meta WHERE name = ?", (name,)).fetchone():
                return False
            _schema.set_meta(conn, name, "1")
        return True

    # -- freshness ---------------------------------------------------------------------

    def refresh(self, max_age: float = 0.0) -> Head:
        now = time.monotonic()
        if max_age and now - self._checked < max_age:
            return self._head
        with self.index.lock, self._read() as conn:
            self._catch_up(conn)
            self._checked = now
            return self._head

    @staticmethod
    def _read_head(conn: sqlite3.Connection) -> Head:
        meta = dict(conn.execute("SELECT name, value FROM meta WHERE name IN "
                                 "('version', 'catalog_serial', 'epoch')").fetchall())
        return Head(int(meta["version"]), int(meta["catalog_serial"]), int(meta["epoch"]))

    def _catch_up(self, conn: sqlite3.Connection) -> Head:
        head = self._read_head(conn)
        with self.index.lock:
            if head.catalog_serial != (self._current.serial if self._current else 0):
                self._current = self._load_catalog(conn, head.catalog_serial)
                self._reach = Reach.of(self._current.catalog if self._current else None)
            have = self.index.version
            if head.version != have:
                rows = conn.execute("SELECT version, rebuild, plus, minus FROM deltas WHERE "
                                    "version > ? AND version <= ? ORDER BY version",
                                    (have, head.version)).fetchall()
                if have and len(rows) == head.version - have and not any(r[1] for r in rows):
                    for version, _, plus, minus in rows:
                        self.index.apply(unpack(minus), unpack(plus), version)
                else:
                    self.index.reset(_entries.all_contributions(conn, self._reach),
                                     head.version)
            self._head = head
        return head

    def raise_epoch(self) -> int:
        with self._tx() as conn:
            epoch = int(conn.execute("SELECT value FROM meta WHERE name = 'epoch'"
                                     ).fetchone()[0]) + 1
            _schema.set_meta(conn, "epoch", str(epoch))
        self.refresh()
        return epoch

    @contextmanager
    def _versioned(self) -> Iterator[tuple[sqlite3.Connection, Change]]:
        """A write that makes a new snapshot version, with its delta in the same
        transaction; the index is caught up before (nobody else can write meanwhile)."""
        with self._tx() as conn:
            head = self._catch_up(conn)
            change = Change()
            yield conn, change
            if change.skip:
                return
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
            _schema.set_meta(conn, "version", str(version))
        self.refresh()

    # -- catalogue ---------------------------------------------------------------------

    def _load_catalog(self, conn: sqlite3.Connection, serial: int) -> StoredCatalog | None:
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
        stored = StoredCatalog(Catalog.load(raw), raw, row[0], row[1])
        self._catalogs[serial] = stored
        return stored

    def catalog(self, schema: int | None = None) -> StoredCatalog | None:
        current = self._current
        if current is None or schema is None or current.schema <= schema:
            return current
        with self._read() as conn:
            row = conn.execute("SELECT MAX(serial) FROM catalogs WHERE schema <= ?",
                               (schema,)).fetchone()
            return self._load_catalog(conn, row[0]) if row[0] is not None else None

    def put_catalog(self, catalog: Catalog, *, serial: int | None = None,
                    schema: int | None = None, if_none: bool = False
                    ) -> tuple[StoredCatalog, int]:
        schema = required_schema(catalog) if schema is None else schema
        raw = stored_form(catalog, schema)
        with self._versioned() as (conn, change):
            current = self._head.catalog_serial
            if if_none and current:
                change.skip = True
            else:
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
                _schema.set_meta(conn, "catalog_serial", str(new))
                # Which representatives are in the set depends on the catalogue.
                change.rebuild = True
        stored = self._current
        assert stored is not None
        return stored, self._head.version

    def stage_catalog(self, catalog: Catalog | None) -> StoredCatalog | None:
        with self._tx() as conn:
            return _catalog_forms.stage(conn, catalog)

    # -- entries -----------------------------------------------------------------------

    def upsert(self, rows: list[EntryRow], subjects: Iterable[SubjectRow] = (), *,
               once: str | None = None,
               relations: Mapping[str, Sequence[tuple[str, str, str | None]]] | None = None
               ) -> dict[str, int]:
        with self._versioned() as (conn, change), _cache_size(conn, IMPORT_CACHE_KIB):
            if once is not None:
                if conn.execute("SELECT 1 FROM meta WHERE name = ?", (once,)).fetchone():
                    change.skip = True
                    return {"created": 0, "updated": 0, "version": self._head.version}
                _schema.set_meta(conn, once, "1")
            current = self._current
            if current is not None:
                known = {d.code for d in current.catalog.lists}
                for i, row in enumerate(rows):
                    if row[4] not in known:
                        raise StoreError(f"entries[{i}] ({row[0]}): list_code {row[4]!r} is "
                                         "not a list of the current catalogue")
            created, updated = _entries.write(conn, self.personal, self._reach, rows,
                                              subjects, change)
            if relations:
                _relations.replace(conn, self.personal, relations)
                change.rebuild = True  # rare (an admin import): the set is rebuilt
        return {"created": created, "updated": updated, "version": self._head.version}

    def set_status(self, entry_id: str, status: EntryStatus,
                   effective_until: dt.datetime | None, reason: str | None = None
                   ) -> ListEntry:
        with self._versioned() as (conn, change):
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

    def lookup(self, subject_id: str, kind: str, *, persons: bool, history: bool
               ) -> dict[str, Any]:
        head = self.refresh(max_age=0.5)
        return _entries.lookup(self._conn(), self.personal, subject_id, kind,
                               persons=persons, history=history, version=head.version)

    # -- snapshot ----------------------------------------------------------------------

    # -- keys --------------------------------------------------------------------------

    def create_key(self, department: str, allow_persons: bool,
                   api_key: str | None = None) -> dict[str, Any]:
        api_key = api_key or "cc_" + secrets.token_urlsafe(32)
        key_id = "k_" + secrets.token_hex(6)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO keys (key_id, department, key_hash, feedback_key, allow_persons, "
                "revoked, created_at) VALUES (?, ?, ?, ?, ?, 0, ?) ON CONFLICT (key_hash) "
                "DO NOTHING", (key_id, department, api_key_hash(api_key),
                               self._seal.encrypt(feedback_key(api_key)).hex(),
                               int(allow_persons), now_cst().isoformat()))
        return {"key_id": key_id, "department": department, "api_key": api_key,
                "allow_persons": allow_persons}

    def revoke_key(self, key_id: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute("UPDATE keys SET revoked = 1 WHERE key_id = ?", (key_id,))
        return cur.rowcount > 0

    # -- feedback: see FeedbackTable ---------------------------------------------------

    def add_feedback(self, records: list[Intake]) -> tuple[list[str], list[str]]:
        return self._add_feedback(records)

    def stats(self, query: StatsQuery | None = None) -> dict[str, Any]:
        head = self.refresh()
        with self._read() as conn:
            out = self._feedback_stats(conn, query or StatsQuery())
            out["entries"] = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        out["listed_prefixes"] = len(self.index)
        out["version"] = head.version
        return out

    # -- signing keys and health -------------------------------------------------------

    def signing_keys(self) -> list[dict[str, Any]]:
        return _signing_keys.listed(self._conn())

    def rotate_signing_key(self, new: Signer) -> bool:
        with self._tx() as conn:
            return _signing_keys.rotate(conn, self.signer, new)

    def ping(self) -> None:
        try:
            self._conn().execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"the sandbox database {self.path} failed: {exc}") from exc


@contextmanager
def _cache_size(conn: sqlite3.Connection, kib: int) -> Iterator[None]:
    before = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = {-int(kib)}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {int(before)}")
