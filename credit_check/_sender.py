"""The outbox sender: a daemon thread that delivers feedback records in batches, with
backoff, and marks them delivered only on the service's acknowledgement.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import re
import threading
import time
import uuid
import weakref
from typing import Any

from credit_check._exceptions import (
    InvalidServiceData,
    OutboxError,
    ServiceRejected,
    ServiceUnavailable,
)
from credit_check._outbox import Claimed, Outbox
from credit_check._transport import Transport, retry_after_seconds

logger = logging.getLogger("credit_check.outbox")

MAX_BATCH = 500  # the protocol's limit per POST /v1/feedback
MAX_RETRY_AFTER = 600.0
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


class OutboxSender:
    """Delivers an :class:`Outbox` to ``POST /v1/feedback`` from a background thread.

    Args:
        outbox: the store to deliver.
        transport: the service transport (its Bearer key authenticates the records).
        batch_size: records per request (at most 500); a batch goes out when full or when
            its first record has waited ``max_delay`` seconds.
        backoff, max_backoff: first and largest delay after a failed delivery, seconds;
            doubled per consecutive failure, with jitter. A ``Retry-After`` is honoured.
        lease: seconds a claimed batch is reserved to this sender (other processes sharing
            the file skip it meanwhile); a crashed sender's leases are freed at once when
            its process is gone.
    """

    def __init__(
        self,
        outbox: Outbox,
        transport: Transport,
        *,
        batch_size: int = 200,
        max_delay: float = 0.5,
        backoff: float = 0.5,
        max_backoff: float = 60.0,
        lease: float = 30.0,
        poll_interval: float = 2.0,
        checkpoint_interval: float = 1.0,
        prune_interval: float = 300.0,
    ) -> None:
        self._outbox = outbox
        self._transport = transport
        self._batch_size = max(1, min(MAX_BATCH, batch_size))
        self._max_delay = max_delay
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._lease = lease
        self._poll = poll_interval
        self._checkpoint_every = checkpoint_interval
        self._prune_every = prune_interval
        self._closed = False
        self.delivered = 0
        self.dead_lettered = 0
        self._reset_process_state()
        os.register_at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))

    def _reset_process_state(self) -> None:
        # Threads do not survive fork() and the parent's locks may be held forever.
        self._pid = os.getpid()
        self._owner = f"{self._pid}:{uuid.uuid4().hex[:12]}"
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._full = threading.Event()
        self._added = 0
        self._flushing = 0
        self._failures = 0
        self._last_checkpoint = self._last_prune = self._last_reap = 0.0

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

    def wake(self, count: int = 1) -> None:
        """Tell the sender ``count`` records were added; a full batch goes out at once."""
        self._added += count
        if self._added >= self._batch_size:
            self._full.set()
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Deliver what is pending, for at most ``timeout`` seconds.

        Returns:
            True when nothing is pending any more (dead-lettered records do not count).
        """
        self._check_fork()
        deadline = time.monotonic() + timeout
        with _log_outbox_errors():
            self._outbox.release_dead_owners()
        thread = self._thread
        if thread is not None and thread.is_alive():
            # Let the thread do the sending so batches stay in order of creation.
            self._flushing += 1
            try:
                while True:
                    self._full.set()
                    self._wake.set()
                    if self._outbox.pending_count() == 0:
                        return True
                    if time.monotonic() >= deadline or not thread.is_alive():
                        return False
                    time.sleep(0.02)
            finally:
                self._flushing -= 1
        while True:
            try:
                if self._send_once() > 0:
                    continue
            except _Backoff as b:
                time.sleep(max(0.0, min(b.delay, deadline - time.monotonic())))
            if self._outbox.pending_count() == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)  # records in flight elsewhere, or waiting for their retry time

    def close(self, timeout: float = 5.0) -> None:
        """Flush for at most ``timeout`` seconds, stop the thread; the rest stays on disk."""
        if self._closed:
            return
        self._check_fork()
        try:
            if not self.flush(timeout):
                logger.info("feedback outbox: records remain pending; they are sent after "
                            "the next start")
        except OutboxError as exc:
            logger.warning("feedback outbox: final flush failed: %s", exc)
        self._closed = True
        self._stop.set()
        self._full.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(max(1.0, timeout))
        with _log_outbox_errors():
            self._outbox.release_owner(self._owner)

    # -- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._housekeeping()
                sent = self._send_once()
            except _Backoff as b:
                self._stop.wait(b.delay)
                continue
            except Exception:  # the thread must survive anything; the records stay on disk
                logger.exception("feedback outbox sender failed; retrying")
                self._stop.wait(self._next_delay())
                continue
            if sent >= self._batch_size or (sent > 0 and self._flushing):
                continue  # a backlog: the next batch is due at once
            # A part batch went out (or none): let records collect again, so a steady
            # stream of checks goes out in full batches, not one small request each.
            self._wake.wait(0.02 if self._flushing else self._poll)
            if self._wake.is_set() and not self._stop.is_set():
                self._wake.clear()
                if not self._flushing:
                    # Give concurrent checks up to max_delay to fill the batch.
                    self._full.wait(self._max_delay)
                self._full.clear()
                self._added = 0

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_checkpoint >= self._checkpoint_every:
            self._last_checkpoint = now
            self._outbox.checkpoint()
        if now - self._last_reap >= 10.0:
            self._last_reap = now
            self._outbox.release_dead_owners()
        if now - self._last_prune >= self._prune_every:
            self._last_prune = now
            while self._outbox.prune() and not self._stop.is_set():
                pass

    def _next_delay(self, retry_after: float | None = None) -> float:
        self._failures += 1
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER)
        base = min(self._max_backoff, self._backoff * 2 ** (self._failures - 1))
        return random.uniform(base / 2, base)

    def _send_once(self) -> int:
        """Claim and deliver one batch; the number of records claimed (0: nothing due)."""
        try:
            batch = self._outbox.claim(self._batch_size, lease=self._lease, owner=self._owner)
        except OutboxError as exc:
            logger.warning("feedback outbox: cannot claim records: %s", exc)
            raise _Backoff(self._next_delay()) from exc
        if not batch:
            return 0
        try:
            self._deliver(batch)
        except _Backoff as b:
            # Acknowledged and dead-lettered rows are no longer pending; release() skips them.
            self._outbox.release([c.seq for c in batch], delay=b.delay)
            raise
        self._failures = 0
        return len(batch)

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
            self._outbox.acknowledge(acked)
            self.delivered += len(acked)
        if rejected:
            self._dead_letter(rejected)
        answered = set(acked).union(s for s, _ in rejected)
        unanswered = [c.seq for c in batch if c.seq not in answered]
        if unanswered:
            logger.warning("feedback outbox: the service did not answer for %d records; "
                           "they are retried", len(unanswered))
            self._outbox.release(unanswered, delay=self._backoff)

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
        self._outbox.dead_letter([(seq, clean_reason(r)) for seq, r in items])
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


class _log_outbox_errors:
    """Housekeeping that may fail without consequence: log an OutboxError and go on."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> bool:
        if isinstance(exc, OutboxError):
            logger.warning("feedback outbox: %s", exc)
            return True
        return False


def _after_fork(ref: weakref.ref[OutboxSender]) -> None:
    sender = ref()
    if sender is not None:
        sender._check_fork()
