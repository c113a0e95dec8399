"""The sandbox's SQLite storage (WAL): entries, subjects, the catalogue, department keys,
received feedback, and the live prefix index kept in step with every change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credit_check._crypto import (
    FieldCipher,
    Signer,
    api_key_hash,
    canonical_json,
    feedback_key,
    id_prefix,
)
from credit_check._models import CST, Catalog, EntryStatus, ListEntry, Target, to_cst_datetime
from credit_check._server._prefix_index import PrefixIndex

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    entry_id TEXT PRIMARY KEY, subject_id TEXT NOT NULL, rep_id TEXT, list_code TEXT NOT NULL,
    status TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS entries_subject ON entries (subject_id);
CREATE INDEX IF NOT EXISTS entries_rep ON entries (rep_id) WHERE rep_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS subjects (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT, rep_id TEXT, clean_since TEXT);
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY, department TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
    feedback_key TEXT NOT NULL, allow_persons INTEGER NOT NULL, revoked INTEGER NOT NULL,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, record_id TEXT NOT NULL UNIQUE,
    department TEXT NOT NULL, kind TEXT NOT NULL, scenario TEXT, outcome TEXT,
    hits INTEGER NOT NULL, measures INTEGER NOT NULL, day TEXT NOT NULL,
    received_at TEXT NOT NULL, data TEXT NOT NULL);
"""

COUNTING = (EntryStatus.ACTIVE.value, EntryStatus.OBJECTION_PENDING.value)
WRITE_CHUNK = 5000
# A bulk import touches the subject index all over; a page cache that holds it (instead of
# SQLite's default 2 MB) keeps the import from re-reading pages. Only while importing.
IMPORT_CACHE_KIB = 256 * 1024

# entry_id, subject_id, rep_id, list_code, status, data (the entry's JSON)
EntryRow = tuple[str, str, str | None, str, str, str]


def entry_row(e: ListEntry) -> EntryRow:
    """An entry as the store keeps it: its indexed columns and its JSON."""
    return (e.entry_id, e.subject_id, e.legal_representative_id, e.list_code, e.status.value,
            e.model_dump_json())


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    department: str
    feedback_key: bytes
    allow_persons: bool
    admin: bool = False


class StoreError(ValueError):
    """A request the store refuses; the message is shown to the caller."""


def now_cst() -> dt.datetime:
    return dt.datetime.now(CST).replace(microsecond=0)


class Store:
    """All sandbox state, in one SQLite file; safe to use from many threads."""

    def __init__(self, path: Path, signer: Signer) -> None:
        self.path = path
        # Feedback HMAC keys must be kept to verify records; at rest they are sealed with a
        # key derived from the signing key (kept in its own 0600 file), so the database
        # alone does not give them away.
        self._seal = FieldCipher(hmac.new(signer.private_bytes(), b"credit-check/sandbox/keys",
                                          hashlib.sha256).digest())
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []  # every thread's, to close them all
        self._write_lock = threading.Lock()
        with self._write_lock:
            self._conn().executescript(SCHEMA)
        self.index = PrefixIndex(signer, version=int(self.meta("version") or 1))
        self._catalog: Catalog | None = None
        raw = self.meta("catalog")
        if raw:
            self._catalog = Catalog.load(json.loads(raw))
        self._rebuild_index(self.index.version)

    # -- plumbing ----------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
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

    def close(self) -> None:
        for conn in self._conns:
            conn.close()
        self._conns = []
        self._local = threading.local()

    def meta(self, name: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _set_meta(conn: sqlite3.Connection, name: str, value: str) -> None:
        conn.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) "
                     "DO UPDATE SET value = excluded.value", (name, value))

    # -- prefixes ----------------------------------------------------------------------

    def _rep_lists(self) -> set[str]:
        if self._catalog is None:
            return set()
        return {code for m in self._catalog.measures if m.target is Target.LEGAL_REPRESENTATIVE
                for code in m.list_codes}

    def _contributions(self, rows: Iterable[tuple[str, str | None, str, str]]) -> list[int]:
        rep_lists = self._rep_lists()
        out: list[int] = []
        for subject_id, rep_id, list_code, status in rows:
            if status not in COUNTING:
                continue
            out.append(id_prefix(subject_id))
            if rep_id and list_code in rep_lists:
                out.append(id_prefix(rep_id))
        return out

    def _rebuild_index(self, version: int) -> None:
        rows = self._conn().execute("SELECT subject_id, rep_id, list_code, status FROM entries")
        self.index.reset(self._contributions(rows), version)

    def _bump(self, conn: sqlite3.Connection) -> int:
        version = self.index.version + 1
        self._set_meta(conn, "version", str(version))
        return version

    # -- catalogue ---------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog | None:
        return self._catalog

    def put_catalog(self, catalog: Catalog) -> int:
        """Replace the catalogue; the prefix set is rebuilt (it depends on it)."""
        with self._tx() as conn:
            self._set_meta(conn, "catalog", json.dumps(catalog.model_dump(mode="json"),
                                                       ensure_ascii=False))
            version = self._bump(conn)
            self._catalog = catalog
            self._rebuild_index(version)
        return version

    # -- entries -----------------------------------------------------------------------

    def upsert_entries(self, entries: list[ListEntry]) -> dict[str, int]:
        """Insert or replace entries by id, all in one transaction and one version."""
        return self.upsert_rows([entry_row(e) for e in entries])

    def upsert_rows(self, rows: list[EntryRow]) -> dict[str, int]:
        """:meth:`upsert_entries` for entries already made into rows (see :func:`entry_row`).

        Raises:
            StoreError: an entry names a list the catalogue does not have.
        """
        if self._catalog is not None:
            known = {d.code for d in self._catalog.lists}
            for i, row in enumerate(rows):
                if row[3] not in known:
                    raise StoreError(f"entries[{i}] ({row[0]}): list_code {row[3]!r} is not "
                                     "a list of the current catalogue")
        created = updated = 0
        minus: list[int] = []
        plus: list[int] = []
        with self._tx() as conn, _cache_size(conn, IMPORT_CACHE_KIB):
            for start in range(0, len(rows), WRITE_CHUNK):
                chunk = rows[start : start + WRITE_CHUNK]
                old = _select_in(conn, "SELECT subject_id, rep_id, list_code, status "
                                 "FROM entries WHERE entry_id IN ({})", [r[0] for r in chunk])
                minus += self._contributions(old)
                plus += self._contributions([r[1:5] for r in chunk])
                updated += len(old)
                created += len(chunk) - len(old)
                # The GIL is let go while SQLite works on each row, so lookups go on.
                conn.executemany(
                    "INSERT INTO entries (entry_id, subject_id, rep_id, list_code, status, data) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entry_id) DO UPDATE SET "
                    "subject_id = excluded.subject_id, rep_id = excluded.rep_id, "
                    "list_code = excluded.list_code, status = excluded.status, "
                    "data = excluded.data", chunk)
            version = self._bump(conn)
            self.index.change(minus, plus, version)
        return {"created": created, "updated": updated, "version": version}

    def set_status(self, entry_id: str, status: EntryStatus,
                   effective_until: dt.datetime | None) -> ListEntry:
        with self._tx() as conn:
            row = conn.execute("SELECT data FROM entries WHERE entry_id = ?",
                               (entry_id,)).fetchone()
            if row is None:
                raise KeyError(entry_id)
            entry = ListEntry.model_validate_json(row[0])
            changes: dict[str, Any] = {"status": status}
            if effective_until is not None:
                changes["effective_until"] = effective_until
            new = entry.model_copy(update=changes)
            old_key = (entry.subject_id, entry.legal_representative_id, entry.list_code,
                       entry.status.value)
            new_key = (*old_key[:3], status.value)
            conn.execute("UPDATE entries SET status = ?, data = ? WHERE entry_id = ?",
                         (status.value, json.dumps(new.model_dump(mode="json"),
                                                   ensure_ascii=False), entry_id))
            version = self._bump(conn)
            self.index.change(self._contributions([old_key]), self._contributions([new_key]),
                              version)
        return new

    def upsert_subjects(self, subjects: Iterable[tuple[str, str, str | None, str | None,
                                                        str | None]]) -> None:
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO subjects (id, kind, name, rep_id, clean_since) "
                "VALUES (?, ?, ?, ?, ?)", list(subjects))

    def lookup(self, subject_id: str, kind: str, *, persons: bool) -> dict[str, Any]:
        """The protocol answer for one subject (entries of every status)."""
        conn = self._conn()
        version = self.index.version
        rows = conn.execute(
            "SELECT data FROM entries WHERE subject_id = ? UNION ALL "
            "SELECT data FROM entries WHERE rep_id = ? AND subject_id != ?",
            (subject_id, subject_id, subject_id)).fetchall()
        entries = [json.loads(r[0]) for r in rows]
        if not persons:
            entries = [e for e in entries if e["subject_kind"] != "person"]
        info = conn.execute("SELECT name, rep_id, clean_since FROM subjects WHERE id = ?",
                            (subject_id,)).fetchone()
        name, rep_id, clean_since = info if info else (None, None, None)
        if rep_id is None:
            rep_id = next((e["legal_representative_id"] for e in entries
                           if e["subject_id"] == subject_id and e["legal_representative_id"]),
                          None)
        if name is None:
            name = next((e["name"] for e in entries if e["subject_id"] == subject_id), None)
        rep = None
        if rep_id:
            rep_row = conn.execute("SELECT name FROM subjects WHERE id = ?", (rep_id,)).fetchone()
            rep = {"id": rep_id, "name": rep_row[0] if rep_row and persons else None}
        if kind == "person" and not persons:
            name = None
        entries.sort(key=lambda e: e["entry_id"])
        return {"subject": {"id": subject_id, "kind": kind, "name": name,
                            "legal_representative": rep},
                "entries": entries, "clean_since": clean_since,
                "data_version": str(version), "as_of": now_cst().isoformat()}

    # -- keys --------------------------------------------------------------------------

    def create_key(self, department: str, allow_persons: bool,
                   api_key: str | None = None) -> dict[str, Any]:
        api_key = api_key or "cc_" + secrets.token_urlsafe(32)
        key_id = "k_" + secrets.token_hex(6)
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO keys (key_id, department, key_hash, feedback_key, allow_persons, "
                "revoked, created_at) VALUES (?, ?, ?, ?, ?, 0, ?) ON CONFLICT(key_hash) "
                "DO NOTHING", (key_id, department, api_key_hash(api_key),
                               self._seal.encrypt(feedback_key(api_key)).hex(),
                               int(allow_persons),
                               now_cst().isoformat()))
        return {"key_id": key_id, "department": department, "api_key": api_key,
                "allow_persons": allow_persons}

    def revoke_key(self, key_id: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute("UPDATE keys SET revoked = 1 WHERE key_id = ?", (key_id,))
        return cur.rowcount > 0

    def find_key(self, api_key: str) -> ApiKey | None:
        wanted = api_key_hash(api_key)
        row = self._conn().execute(
            "SELECT key_id, department, key_hash, feedback_key, allow_persons FROM keys "
            "WHERE key_hash = ? AND revoked = 0", (wanted,)).fetchone()
        if row is None or not hmac.compare_digest(row[2], wanted):
            return None
        return ApiKey(row[0], row[1], self._seal.decrypt(bytes.fromhex(row[3])), bool(row[4]))

    # -- feedback ----------------------------------------------------------------------

    def add_feedback(self, key: ApiKey, records: list[tuple[dict[str, Any], bytes]]
                     ) -> tuple[list[str], list[str]]:
        """Store the records not seen before; returns (accepted, duplicates).

        Args:
            records: each verified record with its signed body (see :meth:`signed_body`).
        """
        received = now_cst().isoformat()
        rows = []
        for record, body in records:
            created = str(record.get("created_at", received))
            tx = record.get("transaction") or {}
            # The signed body with the (verified, hex) hmac put back: the record as sent,
            # without encoding it a second time.
            data = body[:-1].decode() + f',"hmac":"{record["hmac"]}"}}'
            rows.append((record["record_id"], record.get("department") or key.department,
                         record["kind"], tx.get("scenario"), record.get("outcome"),
                         int(bool(record.get("matches"))), len(record.get("measures") or []),
                         _cst_day(created), received, data))
        accepted: list[str] = []
        duplicates: list[str] = []
        new = []
        with self._tx() as conn:
            # Which ids are known is asked once for the batch; the write lock held since
            # before the question keeps the answer true until the commit.
            seen = {r[0] for r in _select_in(conn, "SELECT record_id FROM feedback WHERE "
                                             "record_id IN ({})", [r[0] for r in rows])}
            for row in rows:
                if row[0] in seen:
                    duplicates.append(row[0])
                else:
                    seen.add(row[0])
                    accepted.append(row[0])
                    new.append(row)
            conn.executemany(
                "INSERT INTO feedback (record_id, department, kind, scenario, outcome, hits, "
                "measures, day, received_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(record_id) DO NOTHING", new)
            if duplicates:
                total = int(self.meta("duplicates") or 0) + len(duplicates)
                self._set_meta(conn, "duplicates", str(total))
        return accepted, duplicates

    @staticmethod
    def signed_body(key: ApiKey, record: dict[str, Any]) -> bytes | None:
        """The canonical JSON a record's hmac is over (as ``record_hmac`` makes it), when
        the hmac verifies with the department's key; None when it does not."""
        given = record.get("hmac")
        if not isinstance(given, str):
            return None
        body = canonical_json({k: v for k, v in record.items() if k != "hmac"})
        expected = hmac.new(key.feedback_key, body, hashlib.sha256).hexdigest()
        # Compared as bytes: compare_digest refuses str with non-ASCII characters.
        return body if hmac.compare_digest(expected.encode(), given.encode()) else None

    def feedback(self, since: str | None, limit: int) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT data FROM feedback WHERE received_at >= ? ORDER BY seq LIMIT ?",
            (since or "", limit)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def stats(self) -> dict[str, Any]:
        conn = self._conn()
        out: dict[str, Any] = {"duplicates": int(self.meta("duplicates") or 0)}
        for column in ("scenario", "department", "day"):
            rows = conn.execute(
                f"SELECT {column}, COUNT(*), SUM(hits), SUM(measures) FROM feedback "  # noqa: S608
                f"WHERE kind = 'decision' GROUP BY {column} ORDER BY {column}").fetchall()
            out[f"by_{column}"] = [{column: r[0], "checks": r[1], "hits": r[2] or 0,
                                    "measures": r[3] or 0} for r in rows]
        total = conn.execute("SELECT COUNT(*), SUM(hits), SUM(measures) FROM feedback "
                             "WHERE kind = 'decision'").fetchone()
        out["total"] = {"checks": total[0], "hits": total[1] or 0, "measures": total[2] or 0}
        out["records"] = conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
        out["entries"] = conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        out["listed_prefixes"] = len(self.index)
        out["version"] = self.index.version
        return out


def _cst_day(created: str) -> str:
    """The China Standard Time day of a record's created_at, whatever its UTC offset."""
    moment = to_cst_datetime(created)
    try:
        return moment.astimezone(CST).date().isoformat()  # type: ignore[no-any-return]
    except (AttributeError, OverflowError):  # not a datetime; or at the end of the calendar
        return created[:10]


@contextmanager
def _cache_size(conn: sqlite3.Connection, kib: int) -> Iterator[None]:
    before = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = {-int(kib)}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {int(before)}")


def _select_in(conn: sqlite3.Connection, sql: str, values: list[str]) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(values), 500):
        chunk = values[start : start + 500]
        out += conn.execute(sql.format(",".join("?" * len(chunk))), chunk).fetchall()
    return out
