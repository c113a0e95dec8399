"""The delivery store on PostgreSQL: the records of every host in one table of the
application's database, written directly on the request path (no journal: the INSERT is
the durable write) and delivered by whichever process holds the sender role.

The columns are those of the local store (``_types.SCHEMA``): only non-personal ones in
clear, the record itself one AES-GCM blob whose associated data is its record id. The
tables are prefixed ``credit_check_`` as they live beside the application's own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from typing import Any

from credit_check._crypto import FieldCipher
from credit_check._exceptions import ConfigurationError, CreditCheckError, OutboxError
from credit_check._outbox._types import (
    DEAD,
    DELIVERED,
    PENDING,
    UNDECRYPTABLE,
    Claimed,
    kinds_clause,
)
from credit_check._pg import Conn, Database, lock_key

logger = logging.getLogger("credit_check.outbox")

SCHEMA_VERSION = 1
SCHEMA_LOCK = lock_key("credit-check/outbox-schema")
TABLE = "credit_check_outbox"
COLUMNS = ("record_id, kind, decision_id, case_id, scenario, outcome, created_at, added_at, "
           "hmac, body")
# %s placeholders: also run on a caller's own connection (report(connection=…)).
INSERT = (f"INSERT INTO {TABLE} ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "  # noqa: S608
          "ON CONFLICT (record_id) DO NOTHING")
_KEY_CHECK = b"credit-check outbox key check"
TABLES = [
    "CREATE TABLE credit_check_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE {TABLE} (
        seq BIGSERIAL PRIMARY KEY, record_id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL,
        decision_id TEXT NOT NULL, case_id TEXT, scenario TEXT, outcome TEXT,
        created_at TEXT NOT NULL, added_at DOUBLE PRECISION NOT NULL,
        state INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL DEFAULT 0,
        delivered_at DOUBLE PRECISION, dead_reason TEXT, hmac TEXT NOT NULL,
        body BYTEA NOT NULL)""",
    f"CREATE INDEX {TABLE}_pending ON {TABLE} (seq) WHERE state = 0",
    f"CREATE INDEX {TABLE}_decision ON {TABLE} (decision_id)",
    f"CREATE INDEX {TABLE}_case ON {TABLE} (case_id) WHERE case_id IS NOT NULL",
    """CREATE TABLE credit_check_postcheck (
        seq BIGSERIAL PRIMARY KEY, decision_id TEXT NOT NULL UNIQUE, decision BYTEA NOT NULL,
        created_at TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
        state INTEGER NOT NULL DEFAULT 0, lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
        lease_owner TEXT, reason TEXT)""",
]


def open_schema(db: Database, cipher: FieldCipher) -> None:
    """Create the outbox tables once (under an advisory lock), or check the existing ones:
    their schema version, and that ``cipher`` is the key their records were sealed with.

    Raises:
        ConfigurationError: a newer schema, or another encryption key.
    """

    def work(conn: Conn) -> bytes | None:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK,))
        there = conn.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = "
                             "current_schema() AND table_name = 'credit_check_meta'").fetchone()
        if there is None:
            for statement in TABLES:
                conn.execute(statement)
            conn.executemany("INSERT INTO credit_check_meta (name, value) VALUES (?, ?)",
                             [("schema_version", str(SCHEMA_VERSION)),
                              ("key_check", cipher.encrypt(_KEY_CHECK, b"key-check").hex())])
            return None
        rows = dict(conn.execute("SELECT name, value FROM credit_check_meta").fetchall())
        found = int(rows.get("schema_version", 0))
        if found != SCHEMA_VERSION:
            raise ConfigurationError(
                f"CREDIT_CHECK_OUTBOX_URL {db.shown}: the outbox tables have schema {found}; "
                f"this credit-check uses {SCHEMA_VERSION}"
                + (" — upgrade credit-check" if found > SCHEMA_VERSION else ""))
        return bytes.fromhex(rows["key_check"])

    try:
        check = db.run(work)
    except ConfigurationError:
        raise
    except Exception as exc:
        raise ConfigurationError(f"CREDIT_CHECK_OUTBOX_URL {db.shown}: cannot set up the "
                                 f"outbox tables: {db.message(exc)}") from None
    if check is not None:
        try:
            ok = cipher.decrypt(check, b"key-check") == _KEY_CHECK
        except CreditCheckError:
            ok = False
        if not ok:
            raise ConfigurationError(
                f"CREDIT_CHECK_ENCRYPTION_KEY is not the key of the outbox in {db.shown}: "
                "every host sharing one outbox needs the same key")


class PgDeliveryStore:
    """The delivery store's operations (as the sender uses them) on PostgreSQL."""

    def __init__(self, db: Database, cipher: FieldCipher, *, retention_days: float = 7.0
                 ) -> None:
        self.db = db
        self.path = db.shown
        self.retention = retention_days * 86400.0
        self._cipher = cipher

    def _run(self, what: str, work: Any, *, begin: str | None = None) -> Any:
        try:
            return self.db.run(work, begin=begin)
        except Exception as exc:
            if isinstance(exc, CreditCheckError):
                raise
            raise OutboxError(f"cannot {what} in the feedback outbox {self.db.shown}: "
                              f"{self.db.message(exc)}") from exc

    # -- what the local store's importer kept; nothing to import here ------------------

    def journal_offsets(self) -> dict[str, int]:
        return {}

    def verify(self) -> bool:
        return True  # the database keeps its own pages sound

    def checkpoint(self) -> None:
        return None

    def release_owner(self, owner: str) -> None:
        return None  # no leases: one sender holds the role

    def release_dead_owners(self) -> int:
        return 0

    # -- reads -------------------------------------------------------------------------

    def plain(self, record_id: str, blob: bytes) -> bytes:
        try:
            return self._cipher.decrypt(bytes(blob), record_id.encode())
        except CreditCheckError as exc:
            raise OutboxError(f"feedback record {record_id} cannot be decrypted: the "
                              "encryption key changed") from exc

    def rows(self, what: str, statement: str, params: Sequence[Any]) -> list[Any]:
        """The rows of one query (autocommit, retried on a lost connection)."""
        return list(self._run(what, lambda c: c.execute(statement, params).fetchall()))

    def newest_seq(self) -> int:
        rows = self.rows("read the outbox", f"SELECT MAX(seq) FROM {TABLE}", ())  # noqa: S608
        return int(rows[0][0] or 0)

    def new_pending(self, after: int) -> tuple[int, int]:
        """How many pending records were added after ``after`` (a seq), and the newest seq."""
        rows = self.rows("read the outbox", f"SELECT COUNT(*), MAX(seq) FROM {TABLE} "  # noqa: S608
                         "WHERE state = 0 AND seq > ?", (after,))
        return int(rows[0][0]), int(rows[0][1] or after)

    def counts(self) -> dict[str, Any]:
        def work(conn: Conn) -> dict[str, Any]:
            states = dict(conn.execute(
                f"SELECT state, COUNT(*) FROM {TABLE} GROUP BY state").fetchall())  # noqa: S608
            (oldest,) = conn.execute(f"SELECT MIN(added_at) FROM {TABLE} WHERE state = 0"  # noqa: S608
                                     ).fetchall()[0]
            reasons = conn.execute(
                f"SELECT dead_reason, COUNT(*) AS n FROM {TABLE} WHERE state = 2 "  # noqa: S608
                "GROUP BY dead_reason ORDER BY n DESC LIMIT 5").fetchall()
            return {"pending": int(states.get(PENDING, 0)),
                    "delivered": int(states.get(DELIVERED, 0)),
                    "dead": int(states.get(DEAD, 0)),
                    "undecryptable": int(states.get(UNDECRYPTABLE, 0)),
                    "oldest": oldest,
                    "reasons": tuple((str(r), int(n)) for r, n in reasons)}

        result: dict[str, Any] = self._run("read the status", work)
        return result

    def due_count(self) -> int:
        """Pending records due for a delivery attempt now."""
        rows = self.rows("count records", f"SELECT COUNT(*) FROM {TABLE} WHERE state = 0 "  # noqa: S608
                         "AND next_attempt_at <= ?", (time.time(),))
        return int(rows[0][0])

    def pending_count(self, kinds: Collection[str] | None = None) -> int:
        only, args = kinds_clause(kinds)
        rows = self.rows("count records",
                         f"SELECT COUNT(*) FROM {TABLE} WHERE state = 0" + only, args)  # noqa: S608
        return int(rows[0][0])

    def has_pending(self, kinds: Collection[str] | None = None) -> bool:
        """Whether any record is not yet acknowledged (only of ``kinds`` if given)."""
        only, args = kinds_clause(kinds)
        return bool(self.rows("look for records", f"SELECT 1 FROM {TABLE} WHERE state = 0"  # noqa: S608
                              + only + " LIMIT 1", args))

    # -- delivery (the sender) ---------------------------------------------------------

    def claim(self, limit: int, *, lease: float = 0.0, owner: str = "",
              after: int = 0, kinds: Collection[str] | None = None) -> list[Claimed]:
        """The oldest ``limit`` due pending records with a ``seq`` above ``after``, ready to
        send (only of ``kinds`` if given). One process holds the sender role, so nothing
        is written to take them; a record that does not decrypt is set aside (an ERROR,
        counted) rather than sent or lost."""
        from credit_check._outbox._codec import with_hmac

        only, args = kinds_clause(kinds)
        rows = self.rows("claim records",
                         f"SELECT seq, record_id, hmac, body FROM {TABLE} WHERE state = 0 "  # noqa: S608
                         "AND seq > ? AND next_attempt_at <= ?" + only + " ORDER BY seq LIMIT ?",
                         (after, time.time(), *args, limit))
        claimed, broken = [], []
        for seq, record_id, mac, blob in rows:
            try:
                claimed.append(Claimed(seq, record_id, with_hmac(self.plain(record_id, blob),
                                                                 mac)))
            except (OutboxError, ValueError):
                broken.append(seq)
        if broken:
            self._update("set records aside", "UPDATE {} SET state = 3 WHERE seq = ?",
                         [(s,) for s in broken])
            logger.error("feedback outbox: %d stored records cannot be decrypted with the "
                         "current encryption key; they are kept aside, not delivered — see "
                         "'credit-check outbox status'", len(broken))
        return claimed

    def _update(self, what: str, statement: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self._run(what, lambda c: c.executemany(statement.format(TABLE), rows),
                      begin="BEGIN")

    def acknowledge(self, seqs: Sequence[int]) -> None:
        now = time.time()
        self._update("mark records delivered", "UPDATE {} SET state = 1, delivered_at = ? "
                     "WHERE seq = ? AND state = 0", [(now, s) for s in seqs])

    def dead_letter(self, items: Sequence[tuple[int, str]]) -> None:
        self._update("dead-letter records", "UPDATE {} SET state = 2, dead_reason = ? "
                     "WHERE seq = ? AND state = 0", [(r[:500], s) for s, r in items])

    def release(self, seqs: Sequence[int], *, delay: float = 0.0) -> None:
        due = time.time() + delay
        self._update("release records", "UPDATE {} SET next_attempt_at = ?, "
                     "attempts = attempts + 1 WHERE seq = ? AND state = 0",
                     [(due, s) for s in seqs])

    def prune(self, *, chunk: int = 10_000) -> int:
        """Delete delivered records older than the retention period; how many."""
        cutoff = time.time() - self.retention
        rows = self.rows("prune records",
                         f"DELETE FROM {TABLE} WHERE state = 1 AND delivered_at < ? "  # noqa: S608
                         "RETURNING seq", (cutoff,))
        return len(rows)

    def close(self) -> None:
        return None  # the Database is closed by its owner


class NewRecords:
    """The sender's "importer" for a PostgreSQL outbox: nothing to import, but it tells the
    sender how many pending records appeared since it last looked (written by any host), so
    that batching and ``max_delay`` work as for journals."""

    # Sequence numbers are taken at INSERT and may commit out of order, so a record can
    # slip past the count; every SWEEP seconds any due record wakes the sender.
    SWEEP = 1.0

    def __init__(self, store: PgDeliveryStore) -> None:
        self._store = store
        self._seen: int | None = None
        self._swept = 0.0
        self.imported = 0

    def run(self, max_records: int = 5000) -> int:
        if self._seen is None:
            # Records already there when this sender started are due at once anyway.
            self._seen = self._store.newest_seq()
            return 0
        count, self._seen = self._store.new_pending(self._seen)
        now = time.monotonic()
        if not count and now - self._swept >= self.SWEEP:
            self._swept = now
            count = 1 if self._store.due_count() else 0
        self.imported += count
        return count
