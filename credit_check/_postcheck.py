"""The post-check queue (补查, rule 9): degraded decisions kept in SQLite in the data
directory until the service answers again, and the runner that re-checks them.

The decision (which holds the subject's id) is stored encrypted. Every process of the data
directory may queue; the runner works only in the process holding the *follower* role
(DESIGN rule 14), and claims rows with a lease besides, so each degraded decision is
post-checked once: one ``post_check`` record (whose id is derived from the decision's, so
a repeat after a crash is one record to the service) and one ``on_post_check`` call.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from credit_check._crypto import FieldCipher
from credit_check._exceptions import CreditCheckError, OutboxError, ServiceError
from credit_check._models import Decision
from credit_check._roles import RoleLock
from credit_check._sqlite_file import SQLiteFile

if TYPE_CHECKING:
    from credit_check._pg import AdvisoryRole
    from credit_check._postcheck_pg import PgPostCheckQueue

logger = logging.getLogger("credit_check")

PENDING, SET_ASIDE = 0, 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS post_check (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id TEXT NOT NULL UNIQUE,
    decision BLOB NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
)
"""
# Added to a wave-1 queue on open (its rows are kept and post-checked).
_COLUMNS = {"state": "INTEGER NOT NULL DEFAULT 0", "lease_until": "REAL NOT NULL DEFAULT 0",
            "lease_owner": "TEXT", "reason": "TEXT"}
_AAD = b"credit-check/post-check/v1"
LEASE = 120.0


class PostCheckQueue(SQLiteFile):
    """Durable queue of degraded decisions awaiting a post-check.

    Args:
        path: the SQLite file.
        cipher: encrypts each stored decision.

    Raises:
        OutboxError: the database cannot be opened.
    """

    what = "the post-check queue"

    def __init__(self, path: Path, cipher: FieldCipher,
                 pilot_codes: tuple[str, ...] = ()) -> None:
        self._cipher = cipher
        # Decisions on pilot-period codes were valid when made: they must load again.
        self._context = {"allow": pilot_codes}
        self.owner = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
        super().__init__(path)

    def _prepare(self, conn: sqlite3.Connection) -> None:
        conn.execute(_SCHEMA)
        have = {r[1] for r in conn.execute("PRAGMA table_info(post_check)")}
        for name, kind in _COLUMNS.items():
            if name not in have:
                conn.execute(f"ALTER TABLE post_check ADD COLUMN {name} {kind}")
        # A forked child leases rows under an owner of its own.
        self.owner = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"

    def _execute(self, what: str, sql: str, args: tuple[object, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._connection().execute(sql, args)
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot {what} the post-check queue: {exc}") from exc

    def add(self, decision: Decision) -> None:
        """Queue a degraded decision durably (a decision id is queued once).

        Raises:
            OutboxError: the database cannot be written.
        """
        blob = self._cipher.encrypt(decision.model_dump_json().encode(), _AAD)
        self._execute("write", "INSERT OR IGNORE INTO post_check (decision_id, decision, "
                      "created_at) VALUES (?, ?, ?)",
                      (decision.decision_id, blob, decision.decided_at.isoformat()))

    def claim(self, limit: int = 100) -> list[tuple[int, Decision]]:
        """Lease the oldest due decisions to this process, as ``(seq, decision)``.

        A row that does not decrypt or parse is set aside with an ERROR (counted by
        :meth:`set_aside_count`), never dropped and never blocking the rows after it.

        Raises:
            OutboxError: the database cannot be read or written.
        """
        now = time.time()
        with self._lock:
            try:
                conn = self._connection()
                conn.execute("BEGIN IMMEDIATE")
                rows = conn.execute(
                    "SELECT seq, decision FROM post_check WHERE state = 0 AND lease_until <= ? "
                    "ORDER BY seq LIMIT ?", (now, limit)).fetchall()
                conn.executemany("UPDATE post_check SET lease_until = ?, lease_owner = ? "
                                 "WHERE seq = ?", [(now + LEASE, self.owner, r[0]) for r in rows])
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn is not None and self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise OutboxError(f"cannot read the post-check queue: {exc}") from exc
        found = []
        for seq, blob in rows:
            try:
                plain = self._cipher.decrypt(bytes(blob), _AAD)
                found.append((int(seq), Decision.model_validate_json(plain, context=self._context)))
            except CreditCheckError:
                self.set_aside(int(seq), "cannot be decrypted with the current encryption key")
            except ValidationError:
                self.set_aside(int(seq), "written by an incompatible version")
        return found

    def set_aside(self, seq: int, reason: str) -> None:
        """Keep a row that cannot be post-checked out of the way, visibly."""
        self._execute("write", "UPDATE post_check SET state = 2, reason = ? WHERE seq = ?",
                      (reason, seq))
        logger.error("post-check queue: a queued decision %s; it is kept aside, not "
                     "post-checked (see Checker.status().post_check_set_aside)", reason)

    def attempted(self, seq: int) -> None:
        """Count a failed post-check attempt and give the row back."""
        self._execute("write", "UPDATE post_check SET attempts = attempts + 1, lease_until = 0 "
                      "WHERE seq = ?", (seq,))

    def done(self, seq: int) -> None:
        """Remove a post-checked row."""
        self._execute("write", "DELETE FROM post_check WHERE seq = ?", (seq,))

    def size(self) -> int:
        """How many decisions await a post-check."""
        return int(self._execute("read", "SELECT COUNT(*) FROM post_check WHERE state = 0")
                   .fetchone()[0])

    def set_aside_count(self) -> int:
        """How many queued decisions cannot be post-checked (see :meth:`claim`)."""
        return int(self._execute("read", "SELECT COUNT(*) FROM post_check WHERE state = 2")
                   .fetchone()[0])


class PostCheckRunner:
    """Re-checks queued degraded decisions once the service answers again, in the process
    that holds the follower role.

    Every post-check result is recorded (``record(original, new)``), so each degraded
    decision is closed out on the platform's side whether or not it changed;
    ``on_post_check(original, new)`` is called when the outcome changed or the re-check
    found a hit.

    Args:
        queue: the data directory's queue.
        recheck: decides a subject again with the service reachable, raising
            ``ServiceError`` when it is not.
        record: writes the ``post_check`` feedback record (None: feedback is off).
        role: the data directory's follower lock.
        on_post_check: the host's callback.
    """

    def __init__(
        self,
        queue: PostCheckQueue | PgPostCheckQueue,
        *,
        recheck: Callable[[Decision], Decision],
        record: Callable[[Decision, Decision], None] | None,
        role: RoleLock | AdvisoryRole,
        on_post_check: Callable[[Decision, Decision], None] | None,
    ) -> None:
        self._queue = queue
        self._recheck = recheck
        self._record = record
        self.role = role
        self._callback = on_post_check
        self._lock = threading.Lock()

    def run(self, batch: int = 100) -> int:
        """Post-check what is queued, until the queue is empty or the service fails; only
        in the follower process (this one, if no other holds the role).

        Returns:
            How many decisions were post-checked here.
        """
        if not self.role.try_acquire():
            return 0  # another process of this data directory is the follower
        if not self._lock.acquire(blocking=False):
            return 0  # another thread is already on it
        done = 0
        try:
            while True:
                pending = self._queue.claim(batch)
                if not pending:
                    return done
                for i, (seq, original) in enumerate(pending):
                    try:
                        new = self._recheck(original)
                    except ServiceError as exc:
                        for rest, _ in pending[i:]:
                            self._queue.attempted(rest)
                        logger.info("post-check postponed, service still failing: %s", exc)
                        return done
                    self._emit(original, new)
                    self._queue.done(seq)
                    done += 1
        finally:
            self._lock.release()

    def _emit(self, original: Decision, new: Decision) -> None:
        if self._record is not None:
            self._record(original, new)
        if self._callback is not None and (new.outcome is not original.outcome or new.matches):
            try:
                self._callback(original, new)
            except Exception:  # the host's callback must not stop the post-checks
                logger.exception("on_post_check callback failed for decision %s",
                                 original.decision_id)

    def reset_lock(self) -> None:
        """A fresh lock for a forked child."""
        self._lock = threading.Lock()
