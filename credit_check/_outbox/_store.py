"""The delivery store: a SQLite (WAL) file where the sender keeps every record it imported
from the journals until the service acknowledges it, and delivered ones for the retention
period (the local audit trail).

Only non-personal columns are stored in clear; the record itself (subject id, names,
matched entries) is one AES-GCM blob whose associated data is its record id, so blobs
cannot be swapped between rows. One process writes (the sender); any process reads.

A store file that SQLite reports corrupt (or that is empty: the store is always created
whole, so an empty file is a truncated one) is moved aside as
``outbox.sqlite3.damaged-<time>`` with its WAL, an ERROR is logged, and a fresh store
serves; ``credit-check outbox salvage`` recovers the readable records of the damaged copy.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from credit_check._crypto import FieldCipher
from credit_check._exceptions import CreditCheckError, OutboxError
from credit_check._outbox._types import (
    BUSY_TIMEOUT,
    DEAD,
    DELIVERED,
    DROPPED,
    PENDING,
    SCHEMA,
    SCHEMA_VERSION,
    UNDECRYPTABLE,
    Claimed,
    kinds_clause,
    process_alive,
)

logger = logging.getLogger("credit_check.outbox")

_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}
DAMAGED_INFIX = ".damaged-"


class StoreDamaged(OutboxError):
    """The store file is damaged (and was moved aside where that was allowed)."""


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file itself is damaged (not busy, not out of space)."""
    name = getattr(exc, "sqlite_errorname", "")
    return name.startswith(tuple(_CORRUPT)) or "malformed" in str(exc) \
        or "not a database" in str(exc)


class Store:
    """The delivery store of one data directory.

    Args:
        path: the SQLite file (created whole, mode 0600).
        cipher: encrypts each record at rest.
        retention_days: how long delivered records stay for :meth:`for_case` audits.
        synchronous: ``"normal"`` (durable across process crashes; the default) or
            ``"full"`` (also across power loss).

    Raises:
        OutboxError: the file cannot be opened or created.
    """

    def __init__(self, path: Path, *, cipher: FieldCipher, retention_days: float = 7.0,
                 synchronous: str = "normal") -> None:
        self.path = path
        self.retention = retention_days * 86400.0
        self._cipher = cipher
        self._synchronous = synchronous.upper()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._inode: int | None = None
        self._closed = False
        with self._use("open the store"):
            pass

    # -- opening, damage ---------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        for _ in range(3):
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                self._create()
                continue
            if stat.st_size == 0:
                self._move_aside(stat.st_ino, "the file is empty (truncated)")
                continue
            try:
                conn = self._connect()
            except sqlite3.Error as exc:
                if is_damage(exc):
                    self._move_aside(stat.st_ino, str(exc))
                    continue
                raise OutboxError(
                    f"cannot open the feedback outbox {str(self.path)!r}: {exc}") from exc
            self._inode = stat.st_ino
            return conn
        raise OutboxError(f"cannot open the feedback outbox {str(self.path)!r}: it keeps "
                          "being replaced or damaged")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA journal_size_limit=67108864")
            tables = {r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = 0
            if "meta" in tables:
                row = conn.execute(
                    "SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
                version = int(row[0]) if row else 0
            if version < SCHEMA_VERSION:
                self._migrate(conn, had_records="records" in tables)
            elif version > SCHEMA_VERSION:
                raise OutboxError(
                    f"the feedback outbox {str(self.path)!r} was written by a newer version "
                    f"(schema {version}); upgrade credit-check or use that version")
            # A quick structural read: a file whose pages are damaged fails here.
            conn.execute("SELECT COUNT(*) FROM records WHERE state = 0").fetchone()
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection, *, had_records: bool) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(None, (part.strip() for part in SCHEMA.split(";"))):
                conn.execute(statement)
            for index in DROPPED:
                conn.execute(f"DROP INDEX IF EXISTS {index}")
            conn.execute("INSERT INTO meta (name, value) VALUES ('schema_version', ?) "
                         "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                         (str(SCHEMA_VERSION),))
        except BaseException:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if had_records:
            logger.info("feedback outbox %s migrated to schema %d; its records are kept",
                        self.path, SCHEMA_VERSION)

    def _create(self) -> None:
        # Built whole under a temporary name, then linked into place: an existing store is
        # never replaced, and a half-made one is never seen.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
                conn.execute("INSERT INTO meta (name, value) VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
            finally:
                conn.close()
            with suppress(FileExistsError):  # another process made it first: use theirs
                os.link(tmp, self.path)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(
                f"cannot create the feedback outbox {str(self.path)!r}: {exc}") from exc
        finally:
            for extra in ("", "-wal", "-shm"):
                Path(f"{tmp}{extra}").unlink(missing_ok=True)

    def _move_aside(self, inode: int, why: str) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if self.path.stat().st_ino != inode:
                    return  # another process moved it aside already
            except FileNotFoundError:
                return
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            target = self.path.with_name(f"{self.path.name}{DAMAGED_INFIX}{stamp}")
            for extra in ("-wal", "-shm"):
                side = Path(f"{self.path}{extra}")
                if side.exists():
                    side.replace(Path(f"{target}{extra}"))
            self.path.replace(target)
        finally:
            os.close(fd)
        logger.error(
            "the feedback outbox %s is damaged (%s): moved aside to %s; a fresh outbox "
            "serves. Recover its records with: credit-check outbox salvage %s",
            self.path, why, target, target)

    def verify(self) -> bool:
        """Check the whole file (``PRAGMA quick_check``, proportional to its size: the sender
        runs it once when it takes the role); a damaged store is moved aside. True when
        the store was sound."""
        with self._lock:
            conn = self._current()
            try:
                problems = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
            except sqlite3.DatabaseError as exc:
                problems = [str(exc)]
            if problems == ["ok"]:
                return True
            self._drop()
            self._move_aside(self._inode or -1, "; ".join(problems[:3]))
            return False

    def damaged_copies(self) -> tuple[str, ...]:
        """Store files moved aside as damaged (their WAL and shm files not counted)."""
        prefix = self.path.name + DAMAGED_INFIX
        return tuple(sorted(str(p) for p in self.path.parent.glob(prefix + "*")
                            if not p.name.endswith(("-wal", "-shm"))))

    @contextmanager
    def _use(self, what: str) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise OutboxError(f"cannot {what}: the feedback outbox is closed")
        with self._lock:
            conn = self._current()
            try:
                yield conn
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if is_damage(exc):
                    self._drop()
                    with suppress(OSError):
                        self._move_aside(self._inode or -1, str(exc))
                    raise StoreDamaged(f"cannot {what}: the feedback outbox "
                                       f"{str(self.path)!r} is damaged: {exc}") from exc
                raise OutboxError(
                    f"cannot {what} in the feedback outbox {str(self.path)!r}: {exc}"
                ) from exc

    def _current(self) -> sqlite3.Connection:
        # A forked child opens its own connection; a store replaced on disk (moved aside
        # by another process) is reopened.
        conn = self._conn
        if conn is not None and self._pid == os.getpid():
            try:
                if self.path.stat().st_ino == self._inode:
                    return conn
            except FileNotFoundError:
                pass
            self._drop()
        elif conn is not None:
            self._conn = None  # the parent's: neither used nor closed here
        self._conn, self._pid = self._open(), os.getpid()
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            with suppress(sqlite3.Error):
                self._conn.close()
        self._conn = None

    # -- import (the sender) ------------------------------------------------------------

    def journal_offsets(self) -> dict[str, int]:
        """How far each journal has been imported."""
        with self._use("read the journal offsets") as conn:
            return dict(conn.execute("SELECT name, offset FROM journals").fetchall())

    def import_rows(self, journal: str, offset: int, rows: Sequence[tuple[Any, ...]],
                    quarantined: Sequence[tuple[str, int, str, bytes]] = ()) -> None:
        """Store imported records and the journal's new offset in one transaction."""
        now = time.time()
        with self._use("import records") as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "INSERT INTO records (record_id, kind, decision_id, case_id, scenario, outcome, "
                "created_at, added_at, hmac, body, lease_until, lease_owner) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.executemany(
                "INSERT INTO quarantine (source, offset, reason, data, added_at) "
                "VALUES (?, ?, ?, ?, ?)", [(*q, now) for q in quarantined])
            conn.execute("INSERT INTO journals (name, offset) VALUES (?, ?) ON CONFLICT(name) "
                         "DO UPDATE SET offset = excluded.offset", (journal, offset))
            conn.execute("COMMIT")

    def forget_journal(self, name: str) -> None:
        """Drop a deleted journal's offset."""
        with self._use("forget a journal") as conn:
            conn.execute("DELETE FROM journals WHERE name = ?", (name,))

    # -- reads -------------------------------------------------------------------------

    def _plain(self, record_id: str, blob: bytes) -> bytes:
        try:
            return self._cipher.decrypt(blob, record_id.encode())
        except CreditCheckError as exc:
            raise OutboxError(f"feedback record {record_id} cannot be decrypted: the "
                              "encryption key changed or the outbox file is damaged") from exc

    def decision_row(self, decision_id: str) -> tuple[str, bytes] | None:
        """The stored ``decision`` record of a decision: ``(hmac, canonical body)``."""
        with self._use("read a decision") as conn:
            row = conn.execute(
                "SELECT record_id, hmac, body FROM records WHERE decision_id = ? AND "
                "kind = 'decision' ORDER BY seq LIMIT 1", (decision_id,)).fetchone()
        return None if row is None else (row[1], self._plain(row[0], row[2]))

    def case_rows(self, case_id: str) -> list[tuple[str, bytes]]:
        """Every stored record of a case, oldest first: ``(hmac, canonical body)``."""
        with self._use("read a case") as conn:
            rows = conn.execute(
                "SELECT record_id, hmac, body FROM records WHERE case_id = ? ORDER BY seq",
                (case_id,)).fetchall()
        return [(mac, self._plain(rid, blob)) for rid, mac, blob in rows]

    def followed_rows(self, after: int, limit: int) -> list[tuple[int, str, bytes]]:
        """Stored records a case follow-up reads, after ``seq`` ``after``: decisions and
        post-checks of a case, or that applied a measure. ``(seq, hmac, canonical body)``."""
        with self._use("read records") as conn:
            rows = conn.execute(
                "SELECT seq, record_id, hmac, body FROM records WHERE seq > ? AND kind IN "
                "('decision', 'post_check') AND (case_id IS NOT NULL OR outcome IN "
                "('deny', 'review', 'restrict')) ORDER BY seq LIMIT ?",
                (after, limit)).fetchall()
        return [(int(seq), mac, self._plain(rid, blob)) for seq, rid, mac, blob in rows]

    def counts(self) -> dict[str, Any]:
        """Counts by state, the oldest pending record's time, top dead-letter reasons and
        the quarantine size."""
        with self._use("read the status") as conn:
            states = dict(conn.execute(
                "SELECT state, COUNT(*) FROM records GROUP BY state").fetchall())
            (oldest,) = conn.execute(
                "SELECT MIN(added_at) FROM records WHERE state = 0").fetchone()
            reasons = conn.execute(
                "SELECT dead_reason, COUNT(*) AS n FROM records WHERE state = 2 "
                "GROUP BY dead_reason ORDER BY n DESC LIMIT 5").fetchall()
            (held,) = conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()
        return {"pending": int(states.get(PENDING, 0)),
                "delivered": int(states.get(DELIVERED, 0)),
                "dead": int(states.get(DEAD, 0)),
                "undecryptable": int(states.get(UNDECRYPTABLE, 0)) + int(held),
                "oldest": oldest,
                "reasons": tuple((str(r), int(n)) for r, n in reasons)}

    def pending_count(self, kinds: Collection[str] | None = None) -> int:
        """Records not yet acknowledged (in flight or not); only of ``kinds`` if given."""
        only, args = kinds_clause(kinds)
        with self._use("count records") as conn:
            (n,) = conn.execute("SELECT COUNT(*) FROM records WHERE state = 0" + only,  # noqa: S608
                                args).fetchone()
        return int(n)

    def has_pending(self, kinds: Collection[str] | None = None) -> bool:
        """Whether any record is not yet acknowledged (only of ``kinds`` if given): one
        index probe, where counting walks every pending record."""
        only, args = kinds_clause(kinds)
        with self._use("look for records") as conn:
            row = conn.execute("SELECT 1 FROM records WHERE state = 0" + only  # noqa: S608
                               + " LIMIT 1", args).fetchone()
        return row is not None

    # -- delivery (the sender) ---------------------------------------------------------

    def claim(self, limit: int, *, lease: float = 0.0, owner: str = "",
              after: int = 0, kinds: Collection[str] | None = None) -> list[Claimed]:
        """The oldest ``limit`` due pending records, ready to send, for the sender.

        One process holds the sender role, so nothing is written to take them: a lease by
        another process (an older version's sender) is still respected. A record that no
        longer decrypts is set aside (an ERROR, counted as undecryptable) rather than sent
        or lost. ``after``: only records with a higher ``seq`` (those up to it are in
        flight). With ``kinds``, records of other kinds stay pending (the service does not
        take them). ``lease`` and ``owner`` are kept for that older protocol's sake.
        """
        now = time.time()
        only, args = kinds_clause(kinds)
        with self._use("claim records") as conn:
            rows = conn.execute(
                "SELECT seq, record_id, hmac, body FROM records WHERE state = 0 AND "  # noqa: S608
                "seq > ? AND lease_until <= ? AND next_attempt_at <= ?" + only
                + " ORDER BY seq LIMIT ?", (after, now, now, *args, limit)).fetchall()
        from credit_check._outbox._codec import with_hmac

        claimed, broken = [], []
        for seq, record_id, mac, blob in rows:
            try:
                claimed.append(Claimed(seq, record_id, with_hmac(self._plain(record_id, blob),
                                                                 mac)))
            except (OutboxError, ValueError):
                broken.append(seq)
        if broken:
            self._set_undecryptable(broken)
        return claimed

    def _set_undecryptable(self, seqs: Sequence[int]) -> None:
        with self._use("set records aside") as conn:
            conn.executemany("UPDATE records SET state = 3, lease_until = 0 WHERE seq = ?",
                             [(s,) for s in seqs])
        logger.error("feedback outbox: %d stored records cannot be decrypted with the current "
                     "encryption key (the key changed, or the file is damaged); they are kept "
                     "aside, not delivered — see 'credit-check outbox status' and "
                     "'credit-check outbox salvage'", len(seqs))

    def acknowledge(self, seqs: Sequence[int]) -> None:
        """Mark records delivered: the service accepted them or already had them."""
        now = time.time()
        with self._use("mark records delivered") as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "UPDATE records SET state = 1, delivered_at = ?, lease_until = 0 "
                "WHERE seq = ? AND state = 0", [(now, s) for s in seqs])
            conn.execute("COMMIT")

    def dead_letter(self, items: Sequence[tuple[int, str]]) -> None:
        """Move records the service rejected to the dead-letter state, with the reason."""
        with self._use("dead-letter records") as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "UPDATE records SET state = 2, dead_reason = ?, lease_until = 0 "
                "WHERE seq = ? AND state = 0", [(reason[:500], s) for s, reason in items])
            conn.execute("COMMIT")

    def release(self, seqs: Sequence[int], *, delay: float = 0.0) -> None:
        """Records whose delivery failed: due again after ``delay`` seconds, one attempt
        more counted."""
        due = time.time() + delay
        with self._use("release records") as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "UPDATE records SET lease_until = 0, next_attempt_at = ?, "
                "attempts = attempts + 1 WHERE seq = ? AND state = 0", [(due, s) for s in seqs])
            conn.execute("COMMIT")

    def release_owner(self, owner: str) -> None:
        """Give back every lease ``owner`` holds (a sender that stops)."""
        with self._use("release leases") as conn:
            conn.execute("UPDATE records SET lease_until = 0 WHERE state = 0 AND "
                         "lease_owner = ?", (owner,))

    def release_dead_owners(self) -> int:
        """Give back leases held by processes of this host that no longer exist."""
        with self._use("release leases") as conn:
            owners = [r[0] for r in conn.execute(
                "SELECT DISTINCT lease_owner FROM records WHERE state = 0 AND lease_until > ?",
                (time.time(),)).fetchall() if r[0]]
            dead = [o for o in owners if not process_alive(o)]
            conn.executemany("UPDATE records SET lease_until = 0 WHERE state = 0 AND "
                             "lease_owner = ?", [(o,) for o in dead])
        return len(dead)

    def checkpoint(self) -> None:
        """Copy the WAL into the database without blocking writers (PASSIVE)."""
        with self._use("checkpoint") as conn:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def prune(self, *, chunk: int = 10_000) -> int:
        """Delete delivered records older than the retention period; returns how many.

        Records are walked from the oldest (seq order is import order) and the walk stops
        at the first record imported within the retention period, so a prune costs what it
        deletes, with no index to keep up on every delivery.
        """
        cutoff = time.time() - self.retention
        deleted, after = 0, 0
        while True:
            with self._use("prune records") as conn:
                rows = conn.execute(
                    "SELECT seq, state, added_at, delivered_at FROM records WHERE seq > ? "
                    "ORDER BY seq LIMIT ?", (after, chunk)).fetchall()
                doomed = [(r[0],) for r in rows
                          if r[1] == DELIVERED and r[3] is not None and r[3] < cutoff]
                conn.executemany("DELETE FROM records WHERE seq = ?", doomed)
            deleted += len(doomed)
            if len(rows) < chunk or rows[-1][2] >= cutoff:
                return deleted
            after = rows[-1][0]

    def close(self) -> None:
        """Close this process's connection; the records stay on disk."""
        with self._lock:
            self._closed = True
            self._drop()

