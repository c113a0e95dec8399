"""The outbox in the application's PostgreSQL database (``CREDIT_CHECK_OUTBOX_URL``), with
the facade of :class:`credit_check._outbox.Outbox`: a record is one INSERT committed before
``check()`` returns, any host delivers any record, and a deleted container loses nothing.

Records are made exactly as the local outbox makes them (``_codec``: the same JSON, record
id and HMAC; the body sealed with the same cipher). ``write_in`` puts an outcome record in
the caller's own open transaction (a psycopg 3 connection, or Django's ``connection``), so
it commits or rolls back with the case's status change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from types import TracebackType
from typing import Any

from credit_check._crypto import FieldCipher
from credit_check._exceptions import ConfigurationError, OutboxError
from credit_check._models import Decision, FeedbackRecord
from credit_check._outbox._codec import model, pack_decision, pack_record, record_data
from credit_check._outbox._importer import store_row
from credit_check._outbox._pg_store import (
    INSERT,
    TABLE,
    NewRecords,
    PgDeliveryStore,
    open_schema,
)
from credit_check._outbox._sender import Sender
from credit_check._outbox._types import FULL_WARNING_INTERVAL, OutboxStatus
from credit_check._pg import AdvisoryRole, Database
from credit_check._transport import Transport

logger = logging.getLogger("credit_check.outbox")

SENDER_ROLE = "credit-check/sender"
# check() waits this long for a lost connection to come back before the gate closes.
WRITE_RETRY = 2.0


class PgOutbox:
    """The durable, encrypted feedback outbox in a PostgreSQL database.

    Args:
        db: the database (its pool is shared with the post-check queue).
        cipher: seals records at rest; the same key on every host (it is checked).
        hmac_key: ``feedback_key(api_key)``.
        max_pending: the soft bound on undelivered records; twice as many refuse writes.
        retention_days: how long delivered records stay for :meth:`for_case` audits.
        owns_db: close ``db`` with the outbox (the CLI's; a Checker closes its own).

    Raises:
        ConfigurationError: the tables cannot be made, or the key is not theirs.
    """

    def __init__(self, db: Database, *, cipher: FieldCipher, hmac_key: bytes,
                 max_pending: int = 1_000_000, retention_days: float = 7.0,
                 owns_db: bool = False) -> None:
        if max_pending < 1:
            raise ConfigurationError(f"outbox max_pending={max_pending}: must be at least 1")
        open_schema(db, cipher)
        self.db = db
        self._owns_db = owns_db
        self.max_pending = max_pending
        self.hard_limit = 2 * max_pending
        self._cipher = cipher
        self._hmac_key = hmac_key
        self.store = PgDeliveryStore(db, cipher, retention_days=retention_days)
        self.role = AdvisoryRole(db, SENDER_ROLE)
        self.sender: Sender | None = None
        self._estimate = 0
        self._estimate_at = 0.0
        self._last_full_warning = 0.0

    def attach_sender(self, transport: Transport, **options: Any) -> Sender:
        """This process's sender (it works only while this process holds the role)."""
        self.sender = Sender(self.store, transport, journal_dir=None, cipher=self._cipher,
                             hmac_key=self._hmac_key, role=self.role,
                             importer=lambda: NewRecords(self.store), **options)
        return self.sender

    # -- writing -----------------------------------------------------------------------

    def _row(self, data: dict[str, Any]) -> tuple[Any, ...]:
        return store_row(data, self._hmac_key, self._cipher, now=time.time())[:10]

    def write_decision(self, decision: Decision, department: str) -> None:
        """Record a decision: committed in the database when this returns.

        Raises:
            OutboxError: carrying ``decision``: the record cannot be written (the database
                is down or unreachable after a short retry, the outbox at its hard bound, a
                field over its limit).
        """
        try:
            row = self._row(record_data(pack_decision(decision, department)))
        except ValueError as exc:
            raise OutboxError(f"decision {decision.decision_id} cannot be recorded: {exc}",
                              decision=decision) from None
        self._insert(row, decision)

    def write(self, record: FeedbackRecord | dict[str, Any]) -> None:
        """Record any feedback record (``report()``, post-checks, …) in its own transaction.

        Raises:
            OutboxError: the record cannot be written.
        """
        self._insert(self._row(self._data(record)), None)

    @staticmethod
    def _data(record: FeedbackRecord | dict[str, Any]) -> dict[str, Any]:
        data = record.model_dump(mode="json") if isinstance(record, FeedbackRecord) else record
        return record_data(pack_record(data))

    def write_in(self, connection: Any, record: FeedbackRecord | dict[str, Any]) -> None:
        """Record ``record`` inside the caller's open transaction on ``connection`` (a
        psycopg 3 connection, or Django's ``django.db.connection`` on psycopg 3): it is
        kept if and only if that transaction commits.

        Raises:
            ConfigurationError: ``connection`` is not a database connection.
            OutboxError: the INSERT failed (the caller's transaction is then in error and
                must be rolled back).
        """
        cursor_of = getattr(connection, "cursor", None)
        if not callable(cursor_of):
            raise ConfigurationError(
                "connection= must be a psycopg 3 connection or Django's connection, with "
                f"the outbox tables in its database; got {type(connection).__name__}")
        row = self._row(self._data(record))
        try:
            with cursor_of() as cursor:
                cursor.execute(INSERT, row)
        except Exception as exc:
            raise OutboxError(f"the outcome record {row[0]} could not be written in the "
                              f"caller's transaction: {' '.join(str(exc).split())[:300]}; "
                              "roll the transaction back") from exc

    def _insert(self, row: tuple[Any, ...], decision: Decision | None) -> None:
        self._check_capacity(decision)
        try:
            self.db.run(lambda conn: conn.raw.execute(INSERT, row), begin=None,
                        retry_for=WRITE_RETRY)
        except Exception as exc:
            what = f"decision {decision.decision_id}" if decision else "a feedback record"
            raise OutboxError(
                f"{what} could not be recorded in the outbox {self.db.shown}: "
                f"{self.db.message(exc)}; the check is refused until the record can be "
                "written", decision=decision) from exc
        if self.sender is not None:
            self.sender.wake()

    def _check_capacity(self, decision: Decision | None) -> None:
        now = time.monotonic()
        if now - self._estimate_at > 1.0:  # counting costs a query: once a second at most
            self._estimate_at = now
            with contextlib.suppress(OutboxError):  # the write itself says what is wrong
                self._estimate = self.store.pending_count()
        if self._estimate >= self.hard_limit:
            raise OutboxError(
                f"the feedback outbox {self.db.shown} holds {self._estimate} undelivered "
                f"records, its hard bound (2 x max_pending={self.max_pending}); the list "
                "service has not acknowledged feedback for a long time: check connectivity "
                "and 'credit-check outbox status'", decision=decision)
        if self._estimate >= self.max_pending and \
                now - self._last_full_warning > FULL_WARNING_INTERVAL:
            self._last_full_warning = now
            logger.warning("feedback outbox is full: %d undelivered records (max_pending=%d)",
                           self._estimate, self.max_pending)

    # -- reading -----------------------------------------------------------------------

    def decision(self, decision_id: str) -> FeedbackRecord | None:
        """The ``decision`` record of ``decision_id`` (written by any host), or None."""
        rows = self.store.rows("read a decision",
                               f"SELECT record_id, hmac, body FROM {TABLE} WHERE "  # noqa: S608
                               "decision_id = ? AND kind = 'decision' ORDER BY seq LIMIT 1",
                               (decision_id,))
        if not rows:
            return None
        record_id, mac, blob = rows[0]
        return model(json.loads(self.store.plain(record_id, blob)), mac)

    def for_case(self, case_id: str) -> list[FeedbackRecord]:
        """Every record kept for a case id, oldest first (the audit trail)."""
        rows = self.store.rows("read a case",
                               f"SELECT record_id, hmac, body FROM {TABLE} WHERE "  # noqa: S608
                               "case_id = ? ORDER BY seq", (case_id,))
        return [model(json.loads(self.store.plain(rid, blob)), mac) for rid, mac, blob in rows]

    # Sequence numbers are taken at INSERT and commits may land out of their order: each
    # read looks this many back again (reading a record twice is harmless to the reader).
    FOLLOW_REWIND = 1000

    def followed(self, after: int, limit: int = 5000) -> tuple[int, list[dict[str, Any]]]:
        """Records a case follow-up reads — decisions and post-checks of a case, or that
        applied a measure — stored after ``after`` (less FOLLOW_REWIND); the new position
        and the records' JSON forms."""
        rows = self.store.rows(
            "read records", f"SELECT seq, record_id, body FROM {TABLE} WHERE seq > ? AND "  # noqa: S608
            "kind IN ('decision', 'post_check') AND (case_id IS NOT NULL OR outcome IN "
            "('deny', 'review', 'restrict')) ORDER BY seq LIMIT ?",
            (max(0, after - self.FOLLOW_REWIND), limit))
        found = [json.loads(self.store.plain(rid, blob)) for _, rid, blob in rows]
        return max([after, *(int(r[0]) for r in rows)]), found

    def status(self) -> OutboxStatus:
        """Counts, the oldest pending record's age, dead letters, set-aside records and
        the sender's database session."""
        counts = self.store.counts()
        oldest = counts["oldest"]
        return OutboxStatus(
            pending=counts["pending"], delivered=counts["delivered"],
            dead_lettered=counts["dead"],
            oldest_pending_age=None if oldest is None else max(0.0, time.time() - oldest),
            full=counts["pending"] >= self.max_pending, path=self.db.shown,
            dead_reasons=counts["reasons"], undecryptable=counts["undecryptable"],
            sender_pid=self.role.holder())

    # -- lifecycle ---------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Let the sender deliver for at most ``timeout`` seconds if it runs here, and stop
        it; the records stay in the database for the next sender."""
        if self.sender is not None:
            self.sender.close(timeout)
        self.role.release()
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> PgOutbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PgOutbox({self.db.shown!r})"
