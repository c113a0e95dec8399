"""The outbox of one data directory, as the Checker uses it: write a record (the journal,
on the request path), read records back by decision or case (store, then journals not yet
imported), status, and the sender.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from credit_check._crypto import FieldCipher
from credit_check._exceptions import ConfigurationError, CreditCheckError, OutboxError
from credit_check._models import Decision, FeedbackRecord
from credit_check._outbox._codec import (
    model,
    pack_decision,
    pack_record,
    record_data,
    signed_text,
)
from credit_check._outbox._journal import (
    AAD,
    JOURNAL_DIR,
    JournalWriter,
    journals,
    read_frames,
    unimported_bytes,
    unimported_records,
)
from credit_check._outbox._sender import Sender
from credit_check._outbox._store import Store
from credit_check._outbox._types import (
    FULL_WARNING_INTERVAL,
    OUTBOX_FILE,
    STATE_FILE,
    OutboxStatus,
)
from credit_check._roles import SENDER_LOCK, RoleLock
from credit_check._transport import Transport

logger = logging.getLogger("credit_check.outbox")

# Journals hold about this many bytes per record (for the bound, an estimate is enough).
FRAME_ESTIMATE = 250


class Outbox:
    """The durable, encrypted feedback outbox of a data directory.

    Args:
        directory: the data directory.
        cipher: encrypts records at rest (journals and store).
        hmac_key: ``feedback_key(api_key)``; every record's HMAC, made by the sender.
        max_pending: the soft bound on undelivered records (see :meth:`write_decision`).
        retention_days: how long delivered records stay for :meth:`for_case` audits.
        synchronous: the store's SQLite ``synchronous`` (``"normal"`` or ``"full"``).

    Raises:
        OutboxError: the store cannot be opened or created.
        ConfigurationError: a bad setting.
    """

    def __init__(self, directory: Path, *, cipher: FieldCipher, hmac_key: bytes,
                 max_pending: int = 1_000_000, retention_days: float = 7.0,
                 synchronous: str = "normal") -> None:
        if synchronous.lower() not in ("normal", "full"):
            raise ConfigurationError(
                f"outbox synchronous={synchronous!r}: use 'normal' or 'full'")
        if max_pending < 1:
            raise ConfigurationError(f"outbox max_pending={max_pending}: must be at least 1")
        self.directory = Path(directory)
        self.max_pending = max_pending
        self.hard_limit = 2 * max_pending
        self.cipher = cipher  # the data directory's (the follow-up's index shares it)
        self._hmac_key = hmac_key
        self.journal_dir = self.directory / JOURNAL_DIR
        self.journal = JournalWriter(self.journal_dir, cipher)
        self.store = Store(self.directory / OUTBOX_FILE, cipher=cipher,
                           retention_days=retention_days, synchronous=synchronous)
        self.role = RoleLock(self.directory / SENDER_LOCK)
        self.sender: Sender | None = None
        self._estimate = 0
        self._estimate_at = 0.0
        self._last_full_warning = 0.0

    def attach_sender(self, transport: Transport, **options: Any) -> Sender:
        """The sender of this data directory for this process (it works only while this
        process holds the sender role)."""
        self.sender = Sender(self.store, transport, journal_dir=self.journal_dir,
                             cipher=self.cipher, hmac_key=self._hmac_key, role=self.role,
                             state_file=self.directory / STATE_FILE, **options)
        return self.sender

    # -- writing -----------------------------------------------------------------------

    def write_decision(self, decision: Decision, department: str) -> None:
        """Record a decision durably (on disk — the page cache — when this returns).

        Raises:
            OutboxError: carrying ``decision``: the record cannot be written (disk full, a
                file size limit, the outbox at its hard bound, a field over its limit).
        """
        try:
            packed = pack_decision(decision, department)
        except ValueError as exc:
            raise OutboxError(f"decision {decision.decision_id} cannot be recorded: {exc}",
                              decision=decision) from None
        self._write(packed, decision)

    def write(self, record: FeedbackRecord | dict[str, Any]) -> None:
        """Record any feedback record durably (``report()``, post-checks, …).

        Raises:
            OutboxError: the record cannot be written.
        """
        data = record.model_dump(mode="json") if isinstance(record, FeedbackRecord) else record
        self._write(pack_record(data), None)

    def _write(self, packed: bytes, decision: Decision | None) -> None:
        if self._estimate >= self.max_pending or time.monotonic() - self._estimate_at > 1.0:
            self._check_capacity(decision)
        try:
            self.journal.append(packed)
        except OSError as exc:
            what = f"decision {decision.decision_id}" if decision else "a feedback record"
            raise OutboxError(
                f"{what} could not be recorded: {exc.strerror or exc} "
                f"(journal in {str(self.journal_dir)!r}); the check is refused until the "
                "record can be written", decision=decision) from exc
        sender = self.sender
        if sender is not None and sender.role.held:
            sender.wake()  # this process delivers: no need to wait for its next look

    def _check_capacity(self, decision: Decision | None) -> None:
        now = time.monotonic()
        # Counting costs a store read: at most once a second per process.
        if now - self._estimate_at > 1.0:
            self._estimate_at = now
            self._estimate = self._pending_estimate()
        if self._estimate >= self.hard_limit:
            raise OutboxError(
                f"the feedback outbox in {str(self.directory)!r} holds about {self._estimate} "
                f"undelivered records, its hard bound (2 x max_pending={self.max_pending}); "
                "the list service has not acknowledged feedback for a long time: check "
                "connectivity and 'credit-check outbox status'", decision=decision)
        if self._estimate >= self.max_pending and \
                now - self._last_full_warning > FULL_WARNING_INTERVAL:
            self._last_full_warning = now
            logger.warning(
                "feedback outbox is full: about %d undelivered records (max_pending=%d); "
                "records are still written until %d, then checks are refused",
                self._estimate, self.max_pending, self.hard_limit)

    def _pending_estimate(self) -> int:
        try:
            state = json.loads((self.directory / STATE_FILE).read_bytes())
            pending = int(state["pending"])
        except (OSError, ValueError, KeyError, TypeError):
            pending = 0
        try:
            backlog = unimported_bytes(self.journal_dir, self.store)
        except OutboxError:
            backlog = sum(p.stat().st_size for p in journals(self.journal_dir) if p.exists())
        return pending + backlog // FRAME_ESTIMATE

    # -- reading -----------------------------------------------------------------------

    def _unimported(self) -> list[tuple[str, dict[str, Any]]]:
        # Records still in journals, as (hmac, data). Read offsets first, store last: a
        # record is then found in one of the two whenever the importer moves it meanwhile.
        offsets = self.store.journal_offsets()
        found = []
        for path in journals(self.journal_dir):
            for _, payload in read_frames(path, offsets.get(path.name, 0)):
                try:
                    data = record_data(self.cipher.decrypt(payload, AAD))
                except (CreditCheckError, ValueError):
                    continue  # the importer sets it aside and reports it
                found.append((signed_text(data, self._hmac_key)[1], data))
        return found

    def decision(self, decision_id: str) -> FeedbackRecord | None:
        """The ``decision`` record of ``decision_id``; None when not kept here."""
        pending = [(mac, data) for mac, data in self._unimported()
                   if data.get("decision_id") == decision_id and data.get("kind") == "decision"]
        row = self.store.decision_row(decision_id)
        if row is not None:
            return model(json.loads(row[1]), row[0])
        return model(pending[0][1], pending[0][0]) if pending else None

    def for_case(self, case_id: str) -> list[FeedbackRecord]:
        """Every record kept for a case id, in order of creation (the audit trail).

        Delivered records are kept for the retention period; the service holds them for good.
        """
        pending = [(mac, data) for mac, data in self._unimported()
                   if (data.get("transaction") or {}).get("case_id") == case_id]
        records = [model(json.loads(body), mac) for mac, body in self.store.case_rows(case_id)]
        seen = {r.record_id for r in records}
        records += [model(data, mac) for mac, data in pending if data["record_id"] not in seen]
        return records

    def followed(self, after: int, limit: int = 5000) -> tuple[int, list[dict[str, Any]]]:
        """Records a case follow-up reads (see ``Store.followed_rows``) stored after
        ``after``, then — when no sender runs to import them — the ones still in journals
        (again at every call until imported); the new position and the records' JSON
        forms.

        While a sender runs, only what it imported (within a poll, 50 ms): reading the
        journals too would decrypt every record not yet imported at every call, in the
        application's process — seconds of its GIL behind a delivery backlog."""
        rows = self.store.followed_rows(after, limit)
        found = [json.loads(body) for _, _, body in rows]
        if len(rows) < limit and self.role.holder() is None:
            found += [data for _, data in self._unimported()
                      if data.get("kind") in ("decision", "post_check") and (
                          (data.get("transaction") or {}).get("case_id") is not None
                          or data.get("outcome") in ("deny", "review", "restrict"))]
        return (rows[-1][0] if rows else after), found

    def status(self) -> OutboxStatus:
        """Counts, the oldest pending record's age, dead letters, set-aside records,
        journal backlog, damaged copies and the sender's pid."""
        counts = self.store.counts()
        backlog = unimported_bytes(self.journal_dir, self.store)
        pending = counts["pending"] + unimported_records(self.journal_dir, self.store)
        oldest = counts["oldest"]
        return OutboxStatus(
            pending=pending,
            delivered=counts["delivered"],
            dead_lettered=counts["dead"],
            oldest_pending_age=None if oldest is None else max(0.0, time.time() - oldest),
            full=pending >= self.max_pending,
            path=str(self.store.path),
            dead_reasons=counts["reasons"],
            undecryptable=counts["undecryptable"],
            journal_bytes=backlog,
            damaged=self.store.damaged_copies(),
            sender_pid=self.role.holder(),
        )

    # -- lifecycle ---------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Close this process's journal (so the sender can import and delete it), let the
        sender deliver for at most ``timeout`` seconds if it runs here, and close."""
        self.journal.close()
        if self.sender is not None:
            self.sender.close(timeout)
        self.store.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Outbox(directory={str(self.directory)!r}, pid={os.getpid()})"
