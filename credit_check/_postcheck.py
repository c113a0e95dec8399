"""The post-check queue (补查, rule 9): degraded decisions kept in SQLite in the data
directory until the service answers again. The decision (which holds the subject's id) is
stored encrypted with the data directory's cipher.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from credit_check._crypto import FieldCipher
from credit_check._exceptions import OutboxError, ServiceError
from credit_check._feedback import post_check_record
from credit_check._models import Decision

if TYPE_CHECKING:
    from credit_check._engine import Engine
    from credit_check._outbox import Outbox

logger = logging.getLogger("credit_check")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS post_check (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    decision_id TEXT NOT NULL UNIQUE,
    decision BLOB NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
)
"""
_AAD = b"credit-check/post-check/v1"


class PostCheckQueue:
    """Durable queue of degraded decisions awaiting a post-check.

    Args:
        path: the SQLite file.
        cipher: encrypts each stored decision.

    Raises:
        OutboxError: the database cannot be opened.
    """

    def __init__(self, path: Path, cipher: FieldCipher) -> None:
        self._path = path
        self._cipher = cipher
        self._lock = threading.Lock()
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        with self._lock:
            self._connection()
        # Hold the lock across fork() so no thread of ours is inside SQLite at that moment:
        # a child would inherit SQLite's internal mutexes locked forever.
        ref = weakref.ref(self)
        os.register_at_fork(before=functools.partial(_fork_hook, ref, "before"),
                            after_in_parent=functools.partial(_fork_hook, ref, "parent"),
                            after_in_child=functools.partial(_fork_hook, ref, "child"))

    def _connection(self) -> sqlite3.Connection:
        # A forked child opens its own connection: SQLite handles must not cross a fork.
        if self._conn is None or self._pid != os.getpid():
            try:
                conn = sqlite3.connect(self._path, check_same_thread=False, timeout=10,
                                       isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(_SCHEMA)
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot open the post-check queue {self._path}: {exc}") from exc
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def add(self, decision: Decision) -> None:
        """Queue a degraded decision durably (a decision id is queued once).

        Raises:
            OutboxError: the database cannot be written.
        """
        blob = self._cipher.encrypt(decision.model_dump_json().encode(), _AAD)
        with self._lock:
            try:
                self._connection().execute(
                    "INSERT OR IGNORE INTO post_check (decision_id, decision, created_at) "
                    "VALUES (?, ?, ?)",
                    (decision.decision_id, blob, decision.decided_at.isoformat()),
                )
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot write the post-check queue: {exc}") from exc

    def pending(self, limit: int = 100) -> list[tuple[int, Decision]]:
        """The oldest queued decisions, as ``(seq, decision)``; unreadable rows are dropped.

        Raises:
            OutboxError: the database cannot be read.
            ConfigurationError: the rows do not decrypt with the configured key.
        """
        with self._lock:
            try:
                rows = self._connection().execute(
                    "SELECT seq, decision FROM post_check ORDER BY seq LIMIT ?", (limit,)
                ).fetchall()
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read the post-check queue: {exc}") from exc
        found = []
        for seq, blob in rows:
            plain = self._cipher.decrypt(bytes(blob), _AAD)
            try:
                found.append((int(seq), Decision.model_validate_json(plain)))
            except ValidationError:
                # Written by an incompatible version: it can never be re-checked.
                self.done(int(seq))
        return found

    def attempted(self, seq: int) -> None:
        """Count a failed post-check attempt of one row."""
        with self._lock:
            try:
                self._connection().execute(
                    "UPDATE post_check SET attempts = attempts + 1 WHERE seq = ?", (seq,)
                )
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot write the post-check queue: {exc}") from exc

    def done(self, seq: int) -> None:
        """Remove a post-checked row."""
        with self._lock:
            try:
                self._connection().execute("DELETE FROM post_check WHERE seq = ?", (seq,))
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot write the post-check queue: {exc}") from exc

    def size(self) -> int:
        """How many decisions await a post-check."""
        with self._lock:
            try:
                row = self._connection().execute("SELECT COUNT(*) FROM post_check").fetchone()
            except sqlite3.Error as exc:
                raise OutboxError(f"cannot read the post-check queue: {exc}") from exc
        return int(row[0])

    def reset_lock(self) -> None:
        """A fresh lock for a forked child."""
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close this process's connection."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None



def _fork_hook(ref: weakref.ReferenceType[PostCheckQueue], when: str) -> None:
    queue = ref()
    if queue is None:
        return
    if when == "before":
        queue._lock.acquire()
    elif when == "parent":
        queue._lock.release()
    else:
        queue.reset_lock()


class PostCheckRunner:
    """Re-checks queued degraded decisions once the service answers again.

    Every post-check result is recorded as a ``post_check`` feedback record, so each
    degraded decision is closed out on the platform's side whether or not it changed;
    ``on_post_check(original, new)`` is called when the outcome changed or the re-check
    found a hit.
    """

    def __init__(
        self,
        queue: PostCheckQueue,
        engine: Engine,
        *,
        department: str,
        outbox: Outbox | None,
        on_post_check: Callable[[Decision, Decision], None] | None,
        wake: Callable[[], None],
    ) -> None:
        self._queue = queue
        self._engine = engine
        self._department = department
        self._outbox = outbox
        self._callback = on_post_check
        self._wake = wake
        self._lock = threading.Lock()

    def run(self, batch: int = 100) -> int:
        """Post-check what is queued, until the queue is empty or the service fails.

        Returns:
            How many decisions were post-checked.
        """
        from credit_check._engine import Mode

        if not self._lock.acquire(blocking=False):
            return 0  # another thread is already on it
        done = 0
        try:
            while True:
                pending = self._queue.pending(batch)
                if not pending:
                    return done
                for seq, original in pending:
                    try:
                        new = self._engine.decide_many(
                            [original.subject], original.transaction, Mode.STRICT
                        )[0]
                    except ServiceError as exc:
                        self._queue.attempted(seq)
                        logger.info("post-check postponed, service still failing: %s", exc)
                        return done
                    assert new is not None  # STRICT mode decides or raises
                    self._emit(original, new)
                    self._queue.done(seq)
                    done += 1
        finally:
            self._lock.release()

    def _emit(self, original: Decision, new: Decision) -> None:
        if self._outbox is not None:
            self._outbox.add(post_check_record(
                new, previous=original, original_decision_id=original.decision_id,
                department=self._department,
            ))
            self._wake()
        if self._callback is not None and (new.outcome is not original.outcome or new.matches):
            try:
                self._callback(original, new)
            except Exception:  # the host's callback must not stop the post-checks
                logger.exception("on_post_check callback failed for decision %s",
                                 original.decision_id)

    def reset_lock(self) -> None:
        """A fresh lock for a forked child."""
        self._lock = threading.Lock()
