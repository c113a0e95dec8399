"""PostgreSQL plumbing shared by the list service and the SDK's outbox: a connection pool
opened from a ``postgresql://`` URL with a clear start-up error, the URL shown without its
password, statements written with ``?`` placeholders (as for SQLite) run through psycopg 3,
and a lost connection retried for a bounded time.

psycopg is an optional dependency (the ``postgres`` extra); it is imported only here, and
only when a PostgreSQL URL is used.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from credit_check._exceptions import ConfigurationError

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

logger = logging.getLogger("credit_check")

T = TypeVar("T")
SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT = 5
# SQLSTATE classes after which the same work may simply be tried again on a fresh
# connection: 08 connection exception, 57P admin or crash shutdown, 40 serialization
# failure or deadlock. None: the client lost the connection itself.
_RETRYABLE = ("08", "57P", "40")


def is_postgres_url(text: object) -> bool:
    """Whether ``text`` names a PostgreSQL database (rather than a SQLite file)."""
    return isinstance(text, str) and text.lower().startswith(SCHEMES)


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return url.split("@")[-1] if "@" in url else url


def _scrub(text: str, url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text


def require_psycopg() -> None:
    """Raises ConfigurationError naming the extra when psycopg is not installed."""
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "a postgresql:// database needs psycopg 3 and psycopg_pool: "
            "pip install 'credit-check[postgres]'") from None


@functools.lru_cache(maxsize=1024)
def pg_sql(statement: str) -> str:
    """A statement written with ``?`` placeholders in psycopg's ``%s`` style."""
    return statement.replace("%", "%%").replace("?", "%s")


def retryable(exc: BaseException) -> bool:
    """Whether ``exc`` is a lost connection (or a serialization conflict) worth a retry."""
    import psycopg

    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith(_RETRYABLE)


class Conn:
    """A psycopg connection that takes the ``?`` statements the SQLite code uses."""

    __slots__ = ("raw",)
    # The shared SQL code may pass a list as one array parameter (``= ANY(?)``).
    arrays = True

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, statement: str, params: Sequence[Any] | None = None
                ) -> psycopg.Cursor[Any]:
        return self.raw.execute(pg_sql(statement), params)

    def executemany(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(pg_sql(statement), rows)

    def copy_rows(self, table: str, columns: str, rows: Iterable[Sequence[Any]]) -> None:
        """``COPY table (columns) FROM STDIN`` with ``rows``: the bulk load path."""
        with self.raw.cursor() as cur, cur.copy(
                f"COPY {table} ({columns}) FROM STDIN") as copy:  # our own names only
            for row in rows:
                copy.write_row(row)

    def stream(self, statement: str, params: Sequence[Any] | None = None
               ) -> Iterator[tuple[Any, ...]]:
        """The rows of a large result, without holding them all in memory."""
        with self.raw.cursor() as cur:
            yield from cur.stream(pg_sql(statement), params)


class Database:
    """A connection pool on one PostgreSQL database, owned by one process: a forked child
    opens its own (the parent's connections are never used nor closed there).

    Args:
        url: ``postgresql://user:password@host:port/dbname`` (libpq's URL form).
        what: what the database is for, in messages ("list service database", …).
        max_size: the most connections this process opens.
        timeout: seconds to wait for a free connection.
        retry_for: seconds a lost connection is retried before the error is raised.

    Raises:
        ConfigurationError: psycopg is missing, the URL is malformed, or the database
            cannot be reached or refuses the login; the message names the URL without
            its password.
    """

    def __init__(self, url: str, *, what: str, max_size: int = 10, timeout: float = 10.0,
                 retry_for: float = 10.0) -> None:
        require_psycopg()
        self.url = url
        self.shown = redact(url)
        self.what = what
        self.max_size = max_size
        self.timeout = timeout
        self.retry_for = retry_for
        self._lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._pid = -1
        self._inherited: list[object] = []  # a parent's pools: kept, never closed here
        self._closed = False
        self.probe()
        self.pool()

    def probe(self) -> None:
        """Connect once, turning any failure into a clear ConfigurationError."""
        import psycopg

        try:
            psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT).close()
        except psycopg.Error as exc:
            reason = _scrub(" ".join(str(exc).split()), self.url)
            raise ConfigurationError(
                f"cannot connect to the {self.what} {self.shown}: {reason}; check the URL "
                "(postgresql://user:password@host:port/dbname), that the server runs and "
                "that the user may log in") from None

    def pool(self) -> psycopg_pool.ConnectionPool[Any]:
        """This process's pool (opened on first use in each process)."""
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        from psycopg_pool import ConnectionPool

        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self.what} connection pool is closed")
            if self._pool is not None and self._pid == os.getpid():
                return self._pool
            if self._pool is not None:
                self._inherited.append(self._pool)
            pool = ConnectionPool(
                self.url, min_size=1, max_size=self.max_size, open=False,
                timeout=self.timeout, name=self.what.replace(" ", "-"),
                kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
                reconnect_timeout=max(self.retry_for, 30.0))
            pool.open(wait=False)
            self._pool, self._pid = pool, os.getpid()
            return pool

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A connection in autocommit mode: each statement its own transaction."""
        with self.pool().connection() as raw:
            yield Conn(raw)

    @contextmanager
    def transaction(self, begin: str = "BEGIN") -> Iterator[Conn]:
        """One transaction on one connection: committed when the block ends, rolled back
        when it raises. ``begin`` may set the isolation level."""
        with self.pool().connection() as raw:
            conn = Conn(raw)
            raw.execute(begin)
            try:
                yield conn
            except BaseException:
                if not raw.closed:
                    try:
                        raw.execute("ROLLBACK")
                    except Exception as exc:  # the connection is gone: the server rolled back
                        logger.debug("rollback on %s failed: %s", self.shown, exc)
                raise
            raw.execute("COMMIT")

    def run(self, work: Callable[[Conn], T], *, begin: str | None = "BEGIN",
            retry_for: float | None = None) -> T:
        """``work(conn)`` in one transaction (``begin=None``: autocommit), done again on a
        fresh connection when the connection was lost, for up to ``retry_for`` seconds.
        ``work`` must be safe to repeat (the statements it makes are idempotent)."""
        limit = self.retry_for if retry_for is None else retry_for
        deadline = time.monotonic() + limit
        delay = 0.05
        while True:
            try:
                if begin is None:
                    with self.connection() as conn:
                        return work(conn)
                with self.transaction(begin) as conn:
                    return work(conn)
            except Exception as exc:
                if not retryable(exc) or time.monotonic() + delay > deadline:
                    raise
                logger.warning("%s %s: %s; retrying", self.what, self.shown,
                               _scrub(" ".join(str(exc).split()), self.url))
                self._drop_broken()
                time.sleep(delay)
                delay = min(1.0, delay * 2)

    def _drop_broken(self) -> None:
        # After a server restart every idle connection is dead: check them all now rather
        # than finding them one failed statement at a time.
        try:
            self.pool().check()
        except Exception as exc:
            logger.debug("pool check on %s failed: %s", self.shown, exc)

    def message(self, exc: BaseException) -> str:
        """An error's text fit to show: one line, the password scrubbed."""
        return _scrub(" ".join(str(exc).split()), self.url)

    def close(self) -> None:
        """Close this process's connections."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close()


def lock_key(name: str) -> int:
    """A 64-bit advisory lock key for a role name (signed, as PostgreSQL takes it)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class AdvisoryRole:
    """A role held by one process among all hosts sharing a database (DESIGN rule 14): a
    session advisory lock on a connection of its own. It dies with its holder — the server
    ends a dead client's session and frees the lock — so a killed holder is replaced by the
    next process that asks. Same interface as :class:`credit_check._roles.RoleLock`.

    Args:
        db: the database.
        name: the role (``"credit-check/sender"``, ``"credit-check/follower"``).
    """

    # A held role's session is checked at most this often (a restarted server drops it).
    PING = 1.0

    def __init__(self, db: Database, name: str) -> None:
        self.db = db
        self.name = name
        self.key = lock_key(name)
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = os.getpid()
        self._pinged = 0.0
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        """Whether this process holds the role (as far as it last knew)."""
        conn = self._conn
        return conn is not None and self._pid == os.getpid() and not conn.closed

    def try_acquire(self) -> bool:
        """Take the role if nobody holds it; True when this process holds it now."""
        import psycopg

        with self._lock:
            if self._conn is not None and self._pid != os.getpid():
                self._conn = None  # the parent's session: neither used nor closed here
            now = time.monotonic()
            if self.held and now - self._pinged < self.PING:
                return True
            if self.held:
                try:
                    assert self._conn is not None
                    self._conn.execute("SELECT 1")
                    self._pinged = now
                    return True
                except psycopg.Error:
                    logger.warning("lost the %s role: its database session ended", self.name)
                    self._close()
            try:
                conn = psycopg.connect(self.db.url, autocommit=True,
                                       connect_timeout=CONNECT_TIMEOUT)
            except psycopg.Error as exc:
                logger.warning("cannot take the %s role on %s: %s", self.name, self.db.shown,
                               self.db.message(exc))
                return False
            try:
                row = conn.execute("SELECT pg_try_advisory_lock(%s), pg_backend_pid()",
                                   (self.key,)).fetchone()
            except psycopg.Error:
                conn.close()
                return False
            if not row or not row[0]:
                conn.close()
                return False
            self._conn, self._pid, self._pinged = conn, os.getpid(), now
            return True

    def acquire(self, timeout: float | None = None, poll: float = 0.2) -> bool:
        """Wait for the role (at most ``timeout`` seconds); True when held."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.try_acquire():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def release(self) -> None:
        """Give the role up (the next process that asks takes it)."""
        with self._lock:
            if self._pid == os.getpid():
                self._close()
            self._conn = None

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:
                logger.debug("closing the %s role session: %s", self.name, exc)

    def holder(self) -> int | None:
        """The database session (backend pid) holding the role, or None when nobody does."""
        if self.held:
            return os.getpid()
        try:
            with self.db.connection() as conn:
                row = conn.execute(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                    "((classid::bigint << 32) | objid::bigint) = ?", (self.key,)).fetchone()
        except Exception as exc:
            logger.debug("who holds %s: %s", self.name, exc)
            return None
        return None if row is None else int(row[0])
