"""Where a Checker keeps its records — the one place that chooses: the data directory
(journals, SQLite store, SQLite post-check queue, file-lock roles; the default) or the
PostgreSQL database named by ``CREDIT_CHECK_OUTBOX_URL`` (tables, advisory-lock roles),
which every host of the application shares.
"""

from __future__ import annotations

from dataclasses import dataclass

from credit_check._crypto import FieldCipher
from credit_check._datadir import DataDir
from credit_check._exceptions import ConfigurationError
from credit_check._outbox._outbox import Outbox
from credit_check._outbox._pg_outbox import PgOutbox
from credit_check._pg import AdvisoryRole, Database, is_postgres_url, redact
from credit_check._postcheck import PostCheckQueue
from credit_check._postcheck_pg import FOLLOWER_ROLE, PgPostCheckQueue
from credit_check._roles import FOLLOWER_LOCK, RoleLock
from credit_check._settings import Settings

POST_CHECK_FILE = "postcheck.sqlite3"
# The outbox's pool: the request path's INSERTs, the sender, the follower.
POOL_SIZE = 8


@dataclass
class Records:
    """A Checker's outbox (None: feedback is off), post-check queue and follower role."""

    outbox: Outbox | PgOutbox | None
    queue: PostCheckQueue | PgPostCheckQueue
    follower: RoleLock | AdvisoryRole
    db: Database | None = None

    def close(self) -> None:
        """Give up the follower role, close the queue and the database pool (the outbox is
        closed by its owner, who decides how long its sender may deliver first)."""
        self.follower.release()
        self.queue.close()
        if self.db is not None:
            self.db.close()


def open_records(settings: Settings, data_dir: DataDir, cipher: FieldCipher,
                 hmac_key: bytes) -> Records:
    """The records of a Checker configured by ``settings``.

    Raises:
        ConfigurationError: ``CREDIT_CHECK_OUTBOX_URL`` is not a reachable PostgreSQL
            database (named without its password), or is given without an explicit
            ``CREDIT_CHECK_ENCRYPTION_KEY`` (every host must seal with the same key).
        OutboxError: the local outbox or queue cannot be opened.
    """
    url = settings.outbox_url.get_secret_value() if settings.outbox_url else None
    if not url:
        queue = PostCheckQueue(data_dir.file(POST_CHECK_FILE), cipher, settings.pilot_codes)
        try:
            local = Outbox(data_dir.path, cipher=cipher, hmac_key=hmac_key) \
                if settings.feedback else None
        except BaseException:
            queue.close()
            raise
        return Records(local, queue, RoleLock(data_dir.file(FOLLOWER_LOCK)))
    if not is_postgres_url(url):
        raise ConfigurationError(
            f"CREDIT_CHECK_OUTBOX_URL: {redact(url)!r} is not a postgresql:// URL; leave it "
            "unset for the outbox in the data directory")
    if settings.encryption_key is None:
        raise ConfigurationError(
            "CREDIT_CHECK_ENCRYPTION_KEY: needed with CREDIT_CHECK_OUTBOX_URL, the same on "
            "every host, so that any host can read and deliver any record")
    db = Database(url, what="outbox database", max_size=POOL_SIZE, timeout=2.0,
                  retry_for=2.0)
    try:
        outbox = PgOutbox(db, cipher=cipher, hmac_key=hmac_key)  # makes the tables
        return Records(outbox if settings.feedback else None, PgPostCheckQueue(db, cipher, settings.pilot_codes),
                       AdvisoryRole(db, FOLLOWER_ROLE), db)
    except BaseException:
        db.close()
        raise
