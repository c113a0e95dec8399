"""The sender: one per data directory (DESIGN rule 14), elected by an OS file lock. It
imports every process's journal into the delivery store and delivers the records in
batches, with backoff, marking them delivered only on the service's acknowledgement.

Every process of the data directory may run a sender thread; only the one holding the
``sender.lock`` works, the others just try again now and then, so a killed sender is
replaced within about a second. ``credit-check outbox run`` runs one as its own process (a
sidecar), so web workers can run with ``sender=False`` and no sender thread at all.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import queue
import random
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from credit_check._datadir import write_private
from credit_check._exceptions import (
    InvalidServiceData,
    OutboxError,
    ServiceError,
    ServiceRejected,
    ServiceUnavailable,
)
from credit_check._models import V1_KINDS
from credit_check._outbox._importer import Importer
from credit_check._outbox._journal import unimported_bytes
from credit_check._outbox._pg_store import NewRecords, PgDeliveryStore
from credit_check._outbox._store import Store
from credit_check._outbox._types import Claimed
from credit_check._pg import AdvisoryRole
from credit_check._roles import RoleLock
from credit_check._transport import Transport, retry_after_seconds

logger = logging.getLogger("credit_check.outbox")

MAX_BATCH = 500  # the protocol's limit per POST /v1/feedback
# How often the record kinds the service accepts are read again (GET /v1/capabilities).
KINDS_REFRESH = 60.0
MAX_RETRY_AFTER = 600.0
ROLE_RETRY = 1.0
# 4xx answers that say nothing about the records themselves: keep them and retry later.
_NOT_THE_RECORDS = frozenset({401, 403, 404, 405, 408, 409, 425})
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[0-9Xx])(?![0-9A-Za-z])")


class _Backoff(Exception):
    """The batch could not be delivered now; try again after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.delay = delay


def clean_reason(text: str) -> str:
    """A rejection reason fit to store and show: id numbers masked, length bounded."""
    return _ID_NUMBER.sub(lambda m: f"{m.group(1)}********{m.group(2)[-4:]}", text)[:300]


class Sender:
    """Imports and delivers the feedback records of one data directory.

    Args:
        store: the delivery store.
        importer: moves journal records into the store (its ``owner`` must be this
            sender's :attr:`owner`).
        transport: the service transport (its Bearer key authenticates the records).
        role: the data directory's sender lock.
        state_file: where the pending count is published once a second (writers read it
            to enforce the outbox's bound).
        batch_size: records per request (at most 500); a batch goes out when full or when
            its first record has waited ``max_delay`` seconds.
        backoff, max_backoff: first and largest delay after a failed delivery, seconds;
            doubled per consecutive failure, with jitter. A ``Retry-After`` is honoured.
        lease: seconds a batch taken from the store is reserved to this sender.
        poll_interval: how often journals are looked at when no process of ours says it
            wrote (records written by other processes are found this way).
        importer: makes what finds new records (default: the journal importer; a
            PostgreSQL outbox has no journals, only new rows).
        after_import: called after records were imported (the sender process makes the
            case follow-up's watches there).
    """

    def __init__(
        self,
        store: Store | PgDeliveryStore,
        transport: Transport,
        *,
        journal_dir: Path | None,
        cipher: Any,
        hmac_key: bytes,
        role: RoleLock | AdvisoryRole,
        state_file: Path | None = None,
        batch_size: int = 200,
        max_delay: float = 0.5,
        backoff: float = 0.5,
        max_backoff: float = 60.0,
        lease: float = 30.0,
        poll_interval: float = 0.05,
        checkpoint_interval: float = 1.0,
        prune_interval: float = 300.0,
        importer: Callable[[], Importer | NewRecords] | None = None,
        after_import: Callable[[], object] | None = None,
    ) -> None:
        self._store = store
        self._transport = transport
        self._journal_dir = journal_dir
        self._cipher = cipher
        self._hmac_key = hmac_key
        self.role = role
        self._state_file = state_file
        self._batch_size = max(1, min(MAX_BATCH, batch_size))
        self._max_delay = max_delay
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._lease = lease
        self._poll = poll_interval
        self._checkpoint_every = checkpoint_interval
        self._prune_every = prune_interval
        self._make_importer = importer
        self._after_import = after_import
        self._closed = False
        self.delivered = 0
        self.dead_lettered = 0
        self._reset_process_state()
        os.register_at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))

    def _reset_process_state(self) -> None:
        # Threads do not survive fork() and the parent's locks may be held forever.
        self._pid = os.getpid()
        self.owner = f"{self._pid}:{uuid.uuid4().hex[:12]}"
        if self._make_importer is not None:
            self.importer: Importer | NewRecords = self._make_importer()
        else:
            assert self._journal_dir is not None and isinstance(self._store, Store)
            self.importer = Importer(self._journal_dir, self._store, self._cipher,
                                     self._hmac_key)
        self._lock = threading.Lock()
        self._work = threading.Lock()  # one pass at a time: the thread, flush(), close()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        # Records imported and not yet sent, and since when the first of them waits; records
        # from earlier runs or given back after a failure are due at once (``_due``).
        self._unsent = 0
        self._waiting_since: float | None = None
        self._due = True
        self._flushing = 0
        self._failures = 0
        # The delivery pipeline (see _pass): batches handed to the delivery thread.
        self._pipe_lock = threading.Lock()
        self._batches: queue.Queue[tuple[int, list[Claimed]] | None] = queue.Queue(maxsize=1)
        self._deliverer: threading.Thread | None = None
        self._generation = 0
        self._cursor = 0
        self._in_flight = 0
        self._pause_until = 0.0
        self._last_checkpoint = self._last_prune = self._last_reap = self._last_state = 0.0
        # The record kinds the service accepts (§9.0); others stay pending, reported.
        self._kinds: frozenset[str] | None = None
        self._kinds_at = self._looked_at = float("-inf")
        self.held = 0

    def _check_fork(self) -> None:
        if self._pid != os.getpid():
            self._reset_process_state()

    # -- control -----------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (again, in a forked child); no-op when running."""
        self._check_fork()
        with self._lock:
            if self._closed or (self._thread is not None and self._thread.is_alive()):
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="credit-check-outbox",
                                            daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Tell the sender a record was written in this process."""
        self._wake.set()

    def run_forever(self, stop: threading.Event) -> None:
        """Work in the calling thread until ``stop`` is set (``credit-check outbox run``)."""
        self._stop = stop
        self._run()

    def flush(self, timeout: float) -> bool:
        """Import and deliver what is pending, for at most ``timeout`` seconds, when this
        process can hold the sender role; otherwise wait for the sender that holds it.

        Returns:
            True when nothing is pending any more (dead letters and set-aside records do
            not count).
        """
        self._check_fork()
        deadline = time.monotonic() + timeout
        self._flushing += 1
        try:
            while True:
                thread = self._thread
                if thread is not None and thread.is_alive() and self.role.held:
                    self._wake.set()  # the thread sends, so batches stay in order
                elif self._take_role():
                    try:
                        with self._work:
                            self._pass(flush=True)
                    except _Backoff as b:
                        time.sleep(max(0.0, min(b.delay, deadline - time.monotonic())))
                if not self._in_flight and not self._pending():
                    return True
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.02)
        finally:
            self._flushing -= 1

    def _pending(self) -> bool:
        # Asked every 20 ms while flushing: a probe, not a count of the whole backlog.
        if self._journal_dir is not None and unimported_bytes(self._journal_dir, self._store):
            return True
        return self._store.has_pending(self.accepted_kinds())

    def accepted_kinds(self) -> frozenset[str]:
        """The record kinds the service accepts: its ``record_kinds`` (v1.1), the v1 kinds
        from a v1 service. Records of other kinds stay pending and are reported (DESIGN
        §9.0). The service is asked only while records of kinds beyond v1 are pending (a
        local count, at most once a second), and then at most every KINDS_REFRESH seconds,
        so a deployment that writes none makes no call for it."""
        now = time.monotonic()
        if now - self._kinds_at < KINDS_REFRESH or now - self._looked_at < 1.0:
            return self._kinds or V1_KINDS
        self._looked_at = now
        try:
            beyond = self._store.pending_count() - self._store.pending_count(V1_KINDS)
        except OutboxError as exc:
            logger.warning("feedback outbox: %s", exc)
            return self._kinds or V1_KINDS
        if not beyond:
            return self._kinds or V1_KINDS
        self._kinds_at = now
        try:
            resp = self._transport.request("GET", "/v1/capabilities", ok=(200, 404), retries=0)
        except ServiceError as exc:  # delivery will say what is wrong; ask again later
            logger.debug("feedback outbox: cannot read the service's record kinds: %s", exc)
            return self._kinds or V1_KINDS
        listed = resp.body.get("record_kinds") if resp.status == 200 and isinstance(
            resp.body, dict) else None
        before = self._kinds or V1_KINDS
        self._kinds = V1_KINDS | frozenset(
            k for k in (listed if isinstance(listed, list) else ()) if isinstance(k, str))
        if self._kinds != before:
            # Records held back may now go, and they lie before the cursor: claim again
            # from the start (batches claimed meanwhile are void, as after a failure).
            with self._pipe_lock:
                self._generation += 1
                self._cursor = 0
        self._report_held(self._kinds)
        return self._kinds

    def _report_held(self, kinds: frozenset[str]) -> None:
        try:
            self.held = self._store.pending_count() - self._store.pending_count(kinds)
        except OutboxError as exc:
            logger.warning("feedback outbox: %s", exc)
            return
        if self.held:
            logger.warning("feedback outbox: %d records are kept pending because the list "
                           "service does not accept their kind (it lists %s in GET "
                           "/v1/capabilities); they are delivered once it does",
                           self.held, ", ".join(sorted(kinds)))

    def close(self, timeout: float = 5.0) -> None:
        """Deliver for at most ``timeout`` seconds (if this process is the sender), stop the
        thread and give up the role; what is left stays on disk for the next sender."""
        if self._closed:
            return
        self._check_fork()
        if timeout > 0 and self._take_role():  # else another process delivers
            try:
                if not self.flush(timeout):
                    logger.info("feedback outbox: records remain pending; the next sender "
                                "delivers them")
            except OutboxError as exc:
                logger.warning("feedback outbox: final flush failed: %s", exc)
        self._closed = True
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(1.0, timeout))
        self._stop_deliverer(max(1.0, timeout))
        if self.role.held:
            try:
                self._store.release_owner(self.owner)
            except OutboxError as exc:
                logger.warning("feedback outbox: %s", exc)
            self.role.release()

    # -- the thread --------------------------------------------------------------------

    def _take_role(self) -> bool:
        # A new sender checks the store it is about to write once, before anything else.
        if self.role.held:
            return True
        if not self.role.try_acquire():
            return False
        try:
            self._store.verify()
        except OutboxError as exc:
            logger.warning("feedback outbox: cannot verify the store: %s", exc)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._take_role():
                self._stop.wait(ROLE_RETRY)
                continue
            try:
                with self._work:
                    sent = self._pass(flush=bool(self._flushing))
            except _Backoff as b:
                self._stop.wait(b.delay)
                continue
            except Exception:  # the thread must survive anything; the records stay on disk
                logger.exception("feedback outbox sender failed; retrying")
                self._stop.wait(self._next_delay())
                continue
            if sent >= self._batch_size:
                continue  # a backlog: the next batch is due at once
            self._wake.wait(self._poll)
            self._wake.clear()

    def _pass(self, *, flush: bool) -> int:
        """Housekeeping, import, and one batch handed to the delivery thread if one is
        due; the records handed over.

        Delivery runs in its own thread so that the next batch is imported and claimed
        while the service takes the last one: the two sides work at the same time. Batches
        are claimed after a cursor (those up to it are in flight) and delivered in order; a
        failed delivery bumps a generation, which makes batches claimed meanwhile void,
        resets the cursor, and pauses claims until the failed batch is due again — so
        records still go out in store order.
        """
        self._housekeeping()
        now = time.monotonic()
        if now < self._pause_until:
            raise _Backoff(self._pause_until - now)
        imported = self.importer.run()
        if imported and self._after_import is not None:
            try:
                self._after_import()
            except Exception:  # indexing is not delivery: the follower retries it
                logger.exception("feedback outbox: work after an import failed")
        if imported:
            self._unsent += imported
            if self._waiting_since is None:
                self._waiting_since = now
        waited = self._waiting_since is not None and now - self._waiting_since >= self._max_delay
        if not (flush or self._due or waited or self._unsent >= self._batch_size):
            return 0  # let a batch fill up (or its first record wait max_delay)
        kinds = self.accepted_kinds()
        with self._pipe_lock:
            generation, after = self._generation, self._cursor
        try:
            batch = self._store.claim(self._batch_size, after=after, kinds=kinds)
        except OutboxError as exc:
            logger.warning("feedback outbox: cannot claim records: %s", exc)
            raise _Backoff(self._next_delay()) from exc
        if not batch:
            self._unsent, self._waiting_since, self._due = 0, None, False
            return 0
        with self._pipe_lock:
            if generation != self._generation:
                return 0  # a delivery failed meanwhile: claim again from the start
            self._cursor = batch[-1].seq
            self._in_flight += 1
        self._unsent = max(0, self._unsent - len(batch))
        if not self._unsent:
            self._waiting_since = None
        self._due = len(batch) >= self._batch_size  # a full batch: more may be waiting
        self._start_deliverer()
        self._batches.put((generation, batch))  # waits while one batch waits: backpressure
        return len(batch)

    def _start_deliverer(self) -> None:
        with self._lock:
            if self._deliverer is None or not self._deliverer.is_alive():
                self._deliverer = threading.Thread(target=self._deliver_loop, daemon=True,
                                                   name="credit-check-outbox-delivery")
                self._deliverer.start()

    def _deliver_loop(self) -> None:
        while (item := self._batches.get()) is not None:
            generation, batch = item
            try:
                if generation == self._generation:  # else void: claimed after a failure
                    self._deliver(batch)
                    self._failures = 0
            except _Backoff as b:
                self._give_back([c.seq for c in batch], b.delay)
            except Exception:  # the thread must survive anything; the records stay on disk
                logger.exception("feedback outbox delivery failed; retrying")
                self._give_back([c.seq for c in batch], self._next_delay())
            finally:
                with self._pipe_lock:
                    self._in_flight -= 1
                self._wake.set()

    def _give_back(self, seqs: list[int], delay: float) -> None:
        # Records to send again after ``delay``: batches claimed after them are void and
        # claims wait until they are due, so they keep their place in the order.
        # Acknowledged and dead-lettered rows are no longer pending; release() skips them.
        with self._pipe_lock:
            self._generation += 1
            self._cursor = 0
            self._pause_until = time.monotonic() + delay
            self._due = True
        try:
            self._store.release(seqs, delay=delay)
        except OutboxError as exc:
            logger.warning("feedback outbox: %s", exc)

    def _stop_deliverer(self, timeout: float) -> None:
        deliverer = self._deliverer
        if deliverer is not None and deliverer.is_alive():
            self._batches.put(None)
            deliverer.join(timeout)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_checkpoint >= self._checkpoint_every:
            self._last_checkpoint = now
            self._store.checkpoint()
        if now - self._last_reap >= 10.0:
            self._last_reap = now
            self._store.release_dead_owners()
        if now - self._last_prune >= self._prune_every:
            self._last_prune = now
            self._store.prune()
        if self._state_file is not None and now - self._last_state >= 1.0:
            self._last_state = now
            state = {"pending": self._store.pending_count(), "at": time.time(),
                     "sender_pid": os.getpid()}
            try:
                write_private(self._state_file, json.dumps(state).encode())
            except OSError as exc:
                logger.warning("feedback outbox: cannot write %s: %s", self._state_file, exc)

    def _next_delay(self, retry_after: float | None = None) -> float:
        self._failures += 1
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        base = min(self._max_backoff, self._backoff * 2 ** (self._failures - 1))
        return random.uniform(base / 2, base)

    def _deliver(self, batch: list[Claimed]) -> None:
        try:
            resp = self._transport.request(
                "POST", "/v1/feedback",
                content=b'{"records":[%s]}' % b",".join(c.raw for c in batch),
                ok=(200, 429, 503), retries=0,
            )
        except ServiceRejected as exc:
            if exc.status_code in _NOT_THE_RECORDS:
                logger.error("feedback outbox: the service refused delivery (%d): %s; "
                             "records kept", exc.status_code, exc)
                raise _Backoff(self._next_delay()) from exc
            self._split(batch, f"HTTP {exc.status_code}: {exc}")
            return
        except (ServiceUnavailable, InvalidServiceData) as exc:
            self._log_failure(len(batch), str(exc))
            raise _Backoff(self._next_delay()) from exc
        if resp.status != 200:
            wait = retry_after_seconds(resp.headers.get("Retry-After"))
            self._log_failure(len(batch), f"the service answered {resp.status}")
            raise _Backoff(self._next_delay(wait))
        try:
            acked, rejected = _parse_answer(resp.body, batch)
        except InvalidServiceData as exc:
            self._log_failure(len(batch), str(exc))
            raise _Backoff(self._next_delay()) from exc
        if acked:
            self._store.acknowledge(acked)
            self.delivered += len(acked)
        if rejected:
            self._dead_letter(rejected)
        answered = set(acked).union(s for s, _ in rejected)
        unanswered = [c.seq for c in batch if c.seq not in answered]
        if unanswered:
            logger.warning("feedback outbox: the service did not answer for %d records; "
                           "they are retried", len(unanswered))
            self._give_back(unanswered, self._backoff)

    def _split(self, batch: list[Claimed], reason: str) -> None:
        # A whole-batch 4xx (413, 400, ...): halve until the bad record stands alone, so it
        # never blocks the others.
        if len(batch) == 1:
            self._dead_letter([(batch[0].seq, reason)])
            return
        half = len(batch) // 2
        for part in (batch[:half], batch[half:]):
            self._deliver(part)

    def _dead_letter(self, items: list[tuple[int, str]]) -> None:
        self._store.dead_letter([(seq, clean_reason(r)) for seq, r in items])
        self.dead_lettered += len(items)
        logger.error("feedback outbox: the service rejected %d records; they are kept as "
                     "dead letters (see 'credit-check outbox status')", len(items))

    def _log_failure(self, count: int, what: str) -> None:
        if self._failures == 0 or self._failures % 10 == 0:
            logger.warning("feedback outbox: %d records not delivered, will retry: %s",
                           count, what)


def _parse_answer(body: Any, batch: list[Claimed]) -> tuple[list[int], list[tuple[int, str]]]:
    """The acknowledged seqs and the rejected (seq, reason) pairs of a feedback answer."""
    if not isinstance(body, dict):
        raise InvalidServiceData("/v1/feedback: the answer is not a JSON object")
    by_id = {c.record_id: c.seq for c in batch}
    acked: list[int] = []
    for key in ("accepted", "duplicates"):
        ids = body.get(key, [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise InvalidServiceData(f"/v1/feedback: {key!r} is not a list of record ids")
        acked.extend(by_id[i] for i in ids if i in by_id)
    rejected: list[tuple[int, str]] = []
    items = body.get("rejected", [])
    if not isinstance(items, list):
        raise InvalidServiceData("/v1/feedback: 'rejected' is not a list")
    done = set(acked)
    for item in items:
        if not isinstance(item, dict):
            raise InvalidServiceData("/v1/feedback: a 'rejected' item is not an object")
        record_id = item.get("record_id")
        seq = by_id.get(record_id) if isinstance(record_id, str) else None
        index = item.get("index")
        if seq is None and isinstance(index, int) and 0 <= index < len(batch):
            seq = batch[index].seq
        if seq is not None and seq not in done:
            done.add(seq)
            rejected.append((seq, str(item.get("reason") or "rejected by the service")))
    return acked, rejected


def _after_fork(ref: weakref.ReferenceType[Sender]) -> None:
    sender = ref()
    if sender is not None:
        sender._check_fork()
