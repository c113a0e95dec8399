"""The feedback outbox: a SQLite (WAL) file where every feedback record is committed,
encrypted, before the call that made it returns, and kept until the service acknowledges it.

Only non-personal columns are stored in clear; the record itself (subject id, names,
matched entries) is one AES-GCM blob whose associated data is its record id, so blobs
cannot be swapped between rows. Several processes may share one file: each holds its own
connections, SQLite's locks and ``busy_timeout`` order the writes, and senders claim
batches with a lease.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

from credit_check._crypto import FieldCipher, canonical_json
from credit_check._exceptions import ConfigurationError, CreditCheckError, OutboxError
from credit_check._models import FeedbackKind, FeedbackRecord
from credit_check._outbox_types import (
    BUSY_TIMEOUT,
    DEAD,
    DELIVERED,
    FORK_LOCK_WAIT,
    FULL_WARNING_INTERVAL,
    INSERT,
    OUTBOX_FILE,
    PENDING,
    SCHEMA,
    SELF_CHECKPOINT_ADDS,
    Claimed,
    OutboxStatus,
    Ticket,
    process_alive,
)

__all__ = ["OUTBOX_FILE", "Claimed", "Outbox", "OutboxStatus"]

logger = logging.getLogger("credit_check.outbox")


class Outbox:
    """The durable, encrypted store of feedback records.

    Args:
        path: the SQLite file (created with mode 0600).
        cipher: encrypts each record at rest.
        hmac_key: ``feedback_key(api_key)``; every record gets its HMAC on ``add``.
        max_pending: the soft limit of unacknowledged records (see :meth:`add`).
        retention_days: how long delivered records stay for :meth:`for_case` audits.
        synchronous: ``"normal"`` (durable across process crashes; the default) or
            ``"full"`` (also across power loss, at the cost of an fsync per commit).

    Raises:
        OutboxError: the file cannot be opened or initialised.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        cipher: FieldCipher,
        hmac_key: bytes,
        max_pending: int = 1_000_000,
        retention_days: float = 7.0,
        synchronous: str = "normal",
    ) -> None:
        if synchronous.lower() not in ("normal", "full"):
            raise ConfigurationError(
                f"outbox synchronous={synchronous!r}: use 'normal' or 'full'"
            )
        if max_pending < 1:
            raise ConfigurationError(f"outbox max_pending={max_pending}: must be at least 1")
        self.path = Path(path)
        self.max_pending = max_pending
        self.hard_limit = 2 * max_pending
        self.retention = retention_days * 86400.0
        self._cipher = cipher
        self._hmac_key = hmac_key
        self._synchronous = synchronous.upper()
        self._closed = False
        self._abandoned: list[sqlite3.Connection] = []
        self._reset_process_state()
        # A writer connection for add() and reads, and a worker connection for the sender,
        # so a claim or checkpoint in the sender thread never holds the lock add() needs.
        self._fork_held: list[threading.Lock] = []
        self._writer: sqlite3.Connection | None = self._connect(create=True)
        ref = weakref.ref(self)
        os.register_at_fork(before=functools.partial(_fork_hook, ref, "before"),
                            after_in_parent=functools.partial(_fork_hook, ref, "parent"),
                            after_in_child=functools.partial(_fork_hook, ref, "child"))

    # -- connections -------------------------------------------------------------------

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._writer_lock = threading.Lock()
        self._worker_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[Ticket] = []
        self._worker: sqlite3.Connection | None = None
        self._pending_estimate: int | None = None
        self._estimate_at = 0.0
        self._adds_since_checkpoint = 0
        self._last_full_warning = 0.0

    def _after_fork_in_child(self) -> None:
        if self._pid == os.getpid():
            return
        # The parent's connections must not be used (nor closed) here: keep them referenced
        # so they are not finalised, and open new ones on demand.
        if self._writer is not None:
            self._abandoned.append(self._writer)
        if self._worker is not None:
            self._abandoned.append(self._worker)
        self._reset_process_state()
        # Connect lazily: a fork hook is no place for I/O, and SQLite's own mutexes may
        # belong to a thread that does not exist in this process.
        self._writer = None

    def _connect(self, *, create: bool) -> sqlite3.Connection:
        try:
            if create and not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None,
                                   check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open the feedback outbox {str(self.path)!r}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            # Checkpoints are the sender's job (see checkpoint()), never a check()'s.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute("PRAGMA journal_size_limit=67108864")
            if create:
                conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            conn.close()
            raise OutboxError(
                f"cannot initialise the feedback outbox {str(self.path)!r}: {exc}"
            ) from exc
        return conn

    @contextmanager
    def _use(self, what: str, *, worker: bool = False) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise OutboxError(f"cannot {what}: the feedback outbox is closed")
        if self._pid != os.getpid():
            self._after_fork_in_child()
        lock = self._worker_lock if worker else self._writer_lock
        with lock:
            try:
                if worker:
                    if self._worker is None:
                        self._worker = self._connect(create=False)
                    conn = self._worker
                else:
                    if self._writer is None:
                        self._writer = self._connect(create=False)
                    conn = self._writer
                yield conn
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise OutboxError(
                    f"cannot {what} in the feedback outbox {str(self.path)!r}: {exc}"
                ) from exc

    # -- records -----------------------------------------------------------------------

    def add(self, record: FeedbackRecord) -> FeedbackRecord:
        """Sign ``record`` (fills ``record.hmac``) and commit it before returning.

        Record ids are not checked for uniqueness here (an index would cost a page write
        per commit); the service de-duplicates by record id. When ``max_pending`` records wait
        for delivery the outbox is *full*: records are still written (a check is never
        blocked or dropped) and a warning is logged, up to twice ``max_pending``, past which
        this raises.

        Raises:
            OutboxError: the outbox is at its hard limit, or the record cannot be written.
        """
        data = record.model_dump(mode="json")
        del data["hmac"]
        row = self._row(data)
        record.hmac = row[8]
        self._check_capacity()
        self._group_commit([row])
        return record

    def add_data(self, items: Sequence[dict[str, Any]]) -> None:
        """Sign and commit several records, given as the JSON form of a
        :class:`FeedbackRecord` without its ``hmac`` (``model_dump(mode="json")``), in one
        transaction; as :meth:`add`, committed before this returns.

        The caller vouches that each dict is a valid record: nothing is re-validated here
        (the Checker's fast path builds them; a test holds them equal to the model's dump).

        Raises:
            OutboxError: as :meth:`add`.
        """
        rows = [self._row(data) for data in items]
        self._check_capacity()
        self._group_commit(rows)

    def _row(self, data: dict[str, Any]) -> tuple[Any, ...]:
        # One canonical encoding serves both the HMAC and the stored blob; the HMAC (keyed,
        # so it reveals nothing) is kept in its own column and put back when reading.
        body = canonical_json(data)
        record_id = data["record_id"]
        mac = hmac.new(self._hmac_key, body, hashlib.sha256).hexdigest()
        blob = self._cipher.encrypt(body, record_id.encode())
        transaction = data["transaction"]
        return (record_id, data["kind"], data["decision_id"], transaction["case_id"],
                transaction["scenario"], data["outcome"], data["created_at"], time.time(),
                mac, blob)

    def _group_commit(self, rows: list[tuple[Any, ...]]) -> None:
        # Concurrent callers queue their rows; whoever takes the writer lock commits every
        # queued row in one transaction. A caller whose rows went out in another's commit
        # finds them done when it gets the lock: the commit completed before the lock was
        # freed.
        ticket = Ticket(rows)
        with self._queue_lock:
            self._queue.append(ticket)
        with self._use("add a record") as conn:
            if not ticket.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                queued = [row for t in batch for row in t.rows]
                try:
                    if len(queued) == 1:
                        conn.execute(INSERT, queued[0])
                    else:
                        conn.execute("BEGIN IMMEDIATE")
                        conn.executemany(INSERT, queued)
                        conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    for t in batch:
                        t.error = exc
                    raise
                finally:
                    for t in batch:
                        t.done = True
                self._adds_since_checkpoint += len(queued)
                if self._pending_estimate is not None:
                    self._pending_estimate += len(queued)
                if self._adds_since_checkpoint >= SELF_CHECKPOINT_ADDS:
                    self._adds_since_checkpoint = 0
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            elif ticket.error is not None:
                raise ticket.error

    def _check_capacity(self) -> None:
        now = time.monotonic()
        estimate = self._pending_estimate
        # Counting is O(pending): refresh at most once a second, more often only when close.
        if estimate is None or now - self._estimate_at > 1.0 or estimate >= self.hard_limit:
            estimate = self._pending_estimate = self._count(PENDING)
            self._estimate_at = now
        if estimate >= self.hard_limit:
            raise OutboxError(
                f"the feedback outbox {str(self.path)!r} holds {estimate} undelivered records, "
                f"its hard limit (2 x max_pending={self.max_pending}); the list service has "
                "not acknowledged feedback for a long time: check connectivity and "
                "'credit-check outbox status'"
            )
        if estimate >= self.max_pending and now - self._last_full_warning > FULL_WARNING_INTERVAL:
            self._last_full_warning = now
            logger.warning(
                "feedback outbox is full: %d undelivered records (max_pending=%d); records "
                "are still written until %d, then checks fail", estimate, self.max_pending,
                self.hard_limit,
            )

    def _count(self, state: int) -> int:
        with self._use("count records") as conn:
            (n,) = conn.execute("SELECT COUNT(*) FROM records WHERE state = ?", (state,)).fetchone()
        return int(n)

    def _decode(self, record_id: str, mac: str, blob: bytes) -> dict[str, Any]:
        return self._parsed(record_id, mac, self._plain(record_id, blob))

    def _plain(self, record_id: str, blob: bytes) -> bytes:
        try:
            return self._cipher.decrypt(blob, record_id.encode())
        except CreditCheckError as exc:
            raise _undecryptable(record_id) from exc

    @staticmethod
    def _parsed(record_id: str, mac: str, plain: bytes) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(plain)
        except ValueError as exc:
            raise _undecryptable(record_id) from exc
        data["hmac"] = mac
        return data

    def _raw(self, record_id: str, mac: str, blob: bytes) -> bytes:
        # The stored canonical JSON with the HMAC put back as its last member, without
        # parsing and re-encoding the record; a MAC that is not plain hex (a damaged
        # column) takes the long way, so the text is always well-formed JSON.
        plain = self._plain(record_id, blob)
        if (mac.isascii() and mac.isalnum() and len(plain) > 2 and plain.startswith(b"{")
                and plain.endswith(b"}")):
            return b"%s,\"hmac\":\"%s\"}" % (plain[:-1], mac.encode())
        return canonical_json(self._parsed(record_id, mac, plain))

    def _model(self, record_id: str, mac: str, blob: bytes) -> FeedbackRecord:
        return FeedbackRecord.model_validate(self._decode(record_id, mac, blob))

    def decision(self, decision_id: str) -> FeedbackRecord | None:
        """The ``decision`` record of ``decision_id``, decrypted; None when not kept."""
        with self._use("read a decision") as conn:
            row = conn.execute(
                "SELECT record_id, hmac, body FROM records WHERE decision_id = ? AND kind = ? "
                "ORDER BY seq LIMIT 1", (decision_id, FeedbackKind.DECISION.value),
            ).fetchone()
        return None if row is None else self._model(*row)

    def for_case(self, case_id: str) -> list[FeedbackRecord]:
        """Every record kept for a case id, in order of creation (the audit trail).

        Delivered records are kept for ``retention_days``; the service holds them for good.
        """
        with self._use("read a case") as conn:
            rows = conn.execute(
                "SELECT record_id, hmac, body FROM records WHERE case_id = ? ORDER BY seq", (case_id,)
            ).fetchall()
        return [self._model(*r) for r in rows]

    def status(self) -> OutboxStatus:
        """Counts, the oldest pending record's age and the top rejection reasons."""
        with self._use("read the status") as conn:
            counts = dict(conn.execute(
                "SELECT state, COUNT(*) FROM records GROUP BY state").fetchall())
            (oldest,) = conn.execute(
                "SELECT MIN(added_at) FROM records WHERE state = 0").fetchone()
            reasons = conn.execute(
                "SELECT dead_reason, COUNT(*) AS n FROM records WHERE state = 2 "
                "GROUP BY dead_reason ORDER BY n DESC LIMIT 5").fetchall()
        pending = int(counts.get(PENDING, 0))
        return OutboxStatus(
            pending=pending,
            delivered=int(counts.get(DELIVERED, 0)),
            dead_lettered=int(counts.get(DEAD, 0)),
            oldest_pending_age=None if oldest is None else max(0.0, time.time() - oldest),
            full=pending >= self.max_pending,
            path=str(self.path),
            dead_reasons=tuple((str(r), int(n)) for r, n in reasons),
        )

    # -- the sender's side -------------------------------------------------------------

    def claim(self, limit: int, *, lease: float, owner: str) -> list[Claimed]:
        """Lease up to ``limit`` due pending records, oldest first, to ``owner``.

        A record that no longer decrypts is dead-lettered here rather than sent or lost.
        """
        now = time.time()
        with self._use("claim records", worker=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(
                "SELECT seq, record_id, hmac, body FROM records WHERE state = 0 AND lease_until <= ? "
                "AND next_attempt_at <= ? ORDER BY seq LIMIT ?", (now, now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE records SET lease_until = ?, lease_owner = ?, attempts = attempts + 1 "
                "WHERE seq = ?", [(now + lease, owner, r[0]) for r in rows])
            conn.execute("COMMIT")
        claimed, broken = [], []
        for seq, record_id, mac, blob in rows:
            try:
                claimed.append(Claimed(seq, record_id, self._raw(record_id, mac, blob)))
            except OutboxError:
                broken.append((seq, "cannot be decrypted with the current encryption key"))
        if broken:
            self.dead_letter(broken)
        return claimed

    def acknowledge(self, seqs: Sequence[int]) -> None:
        """Mark records delivered: the service accepted them or already had them."""
        now = time.time()
        with self._use("mark records delivered", worker=True) as conn:
            # One transaction for the batch: in autocommit each row would be a commit of
            # its own, a WAL append of every page it touched.
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "UPDATE records SET state = 1, delivered_at = ?, lease_until = 0 "
                "WHERE seq = ? AND state = 0", [(now, s) for s in seqs])
            conn.execute("COMMIT")

    def dead_letter(self, items: Sequence[tuple[int, str]]) -> None:
        """Move records the service rejected to the dead-letter state, with the reason."""
        with self._use("dead-letter records", worker=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "UPDATE records SET state = 2, dead_reason = ?, lease_until = 0 "
                "WHERE seq = ? AND state = 0", [(reason[:500], s) for s, reason in items])
            conn.execute("COMMIT")

    def release(self, seqs: Sequence[int], *, delay: float = 0.0) -> None:
        """Give leased records back, due again after ``delay`` seconds."""
        due = time.time() + delay
        with self._use("release records", worker=True) as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "UPDATE records SET lease_until = 0, next_attempt_at = ? "
                "WHERE seq = ? AND state = 0", [(due, s) for s in seqs])
            conn.execute("COMMIT")

    def release_owner(self, owner: str) -> None:
        """Give back every lease ``owner`` holds (a sender that stops)."""
        with self._use("release leases", worker=True) as conn:
            conn.execute("UPDATE records SET lease_until = 0 WHERE state = 0 AND lease_owner = ?",
                         (owner,))

    def release_dead_owners(self) -> int:
        """Give back leases held by processes of this host that no longer exist."""
        with self._use("release leases", worker=True) as conn:
            owners = [r[0] for r in conn.execute(
                "SELECT DISTINCT lease_owner FROM records WHERE state = 0 AND lease_until > ?",
                (time.time(),)).fetchall() if r[0]]
            dead = [o for o in owners if not process_alive(o)]
            conn.executemany("UPDATE records SET lease_until = 0 WHERE state = 0 AND "
                             "lease_owner = ?", [(o,) for o in dead])
        return len(dead)

    def pending_count(self) -> int:
        """Records not yet acknowledged (in flight or not)."""
        return self._count(PENDING)

    def checkpoint(self) -> None:
        """Copy the WAL into the database without blocking writers (PASSIVE)."""
        with self._use("checkpoint", worker=True) as conn:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._adds_since_checkpoint = 0

    def prune(self, *, chunk: int = 10_000) -> int:
        """Delete delivered records older than the retention period; returns how many."""
        cutoff = time.time() - self.retention
        with self._use("prune records", worker=True) as conn:
            cur = conn.execute(
                "DELETE FROM records WHERE seq IN (SELECT seq FROM records WHERE state = 1 "
                "AND delivered_at < ? LIMIT ?)", (cutoff, chunk))
        return int(cur.rowcount)

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close this process's connections; the records stay on disk."""
        if self._closed:
            return
        self._closed = True
        with self._writer_lock, self._worker_lock:
            for conn in (self._writer, self._worker):
                if conn is not None and self._pid == os.getpid():
                    conn.close()
            self._worker = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Outbox(path={str(self.path)!r})"


def _undecryptable(record_id: str) -> OutboxError:
    return OutboxError(f"feedback record {record_id} cannot be decrypted: the encryption key "
                       "changed or the outbox file is damaged")


def _fork_hook(ref: weakref.ref[Outbox], when: str) -> None:
    # Holding both connection locks across fork() means no thread of ours is inside SQLite
    # at that moment, so the child never inherits a connection (or SQLite mutex) mid-call.
    outbox = ref()
    if outbox is None or (outbox._pid != os.getpid() and when != "child"):
        return
    if when == "before":
        outbox._fork_held = [lock for lock in (outbox._writer_lock, outbox._worker_lock)
                             if lock.acquire(timeout=FORK_LOCK_WAIT)]
    elif when == "parent":
        for lock in outbox._fork_held:
            lock.release()
        outbox._fork_held = []
    else:
        outbox._fork_held = []
        outbox._after_fork_in_child()
