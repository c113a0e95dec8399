"""A SQLite file of the data directory used from several threads and processes: one
connection per process (a forked child opens its own — SQLite handles must not cross a
fork), one lock around each use, and that lock held across ``fork()`` so that no thread of
ours is inside SQLite at that moment (a child would inherit SQLite's internal mutexes
locked forever)."""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import weakref
from pathlib import Path

from credit_check._exceptions import OutboxError


class SQLiteFile:
    """A per-process SQLite connection (WAL, ``synchronous=FULL``, autocommit) to ``path``.

    Subclasses make their tables in :meth:`_prepare` and name the file in ``what`` (for
    the error raised when it cannot be opened).

    Raises:
        OutboxError: the file cannot be opened or prepared.
    """

    what = "the database"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        with self._lock:
            self._connection()
        ref = weakref.ref(self)
        os.register_at_fork(before=functools.partial(_fork_hook, ref, "before"),
                            after_in_parent=functools.partial(_fork_hook, ref, "parent"),
                            after_in_child=functools.partial(_fork_hook, ref, "child"))

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Make the tables (on every new connection: idempotent)."""

    def _connection(self) -> sqlite3.Connection:
        # Called with the lock held.
        if self._conn is None or self._pid != os.getpid():
            try:
                conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10,
                                       isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                self._prepare(conn)
            except (sqlite3.Error, OSError) as exc:
                raise OutboxError(f"cannot open {self.what} {self.path}: {exc}") from exc
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def reset_lock(self) -> None:
        """A fresh lock for a forked child."""
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close this process's connection."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def _fork_hook(ref: weakref.ReferenceType[SQLiteFile], when: str) -> None:
    held = ref()
    if held is None:
        return
    if when == "before":
        held._lock.acquire()
    elif when == "parent":
        held._lock.release()
    else:
        held.reset_lock()
