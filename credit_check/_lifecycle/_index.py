"""The follow-up's index: watches made from the decision records the outbox keeps.

Indexing reads (decrypts) every new decision record, so it runs where that costs the
application nothing: in the sender process, right after it imports records (DESIGN rule
14: an index the sender maintains off the request path). The follower process runs it too,
before it re-screens, for what is left (a sender in a thread, or none); a lock file makes
sure one process at a time moves the index's cursor.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credit_check._crypto import FieldCipher
from credit_check._exceptions import OutboxError
from credit_check._lifecycle._records import case_opened_record
from credit_check._lifecycle._store import CLOSED, OPEN, LifecycleStore, version_of

if TYPE_CHECKING:
    from credit_check._outbox import Outbox
    from credit_check._outbox._pg_outbox import PgOutbox

logger = logging.getLogger("credit_check.lifecycle")

RESCREENED = "rescreened"  # meta: "<epoch>:<version>" every watch was re-screened through
CURSOR = "cursor"
REFUSED = "refused"
BATCH = 5000
INDEX_LOCK = "lifecycle-index.lock"


def parse_marker(text: str | None) -> tuple[int | None, int] | None:
    if not text or ":" not in text:
        return None
    epoch, _, version = text.partition(":")
    return (int(epoch) if epoch else None), int(version)


class Indexer:
    """Watches the decisions recorded since the last look.

    Args:
        store: the lifecycle store.
        outbox: the outbox whose records are watched (``followed``) and that takes the
            ``case_opened`` records.
        watch_limit: the most open watches; more are refused with an ERROR and counted.
        lift_retention: seconds a closed decision that applied a measure is kept.
        lock_path: the lock file that lets one process at a time index (None: the store
            is a database that every host shares, indexed by its follower alone).
    """

    def __init__(self, store: LifecycleStore, outbox: Outbox | PgOutbox, *,
                 watch_limit: int, lift_retention: float, lock_path: Path | None) -> None:
        self.store = store
        self._outbox = outbox
        self.watch_limit = watch_limit
        self._retention = lift_retention
        self._lock_path = lock_path
        self._lock = threading.Lock()

    def reset_lock(self) -> None:
        """A fresh lock for a forked child."""
        self._lock = threading.Lock()

    def keep_until(self, record: dict[str, Any]) -> float:
        decided = dt.datetime.fromisoformat(str(record["created_at"])).timestamp()
        used = any(m.get("entry_id") for m in record.get("measures") or ())
        return decided + self._retention if used else decided

    def mark(self) -> tuple[int | None, int] | None:
        return parse_marker(self.store.meta(RESCREENED))

    @staticmethod
    def flagged(record: dict[str, Any], mark: tuple[int | None, int] | None) -> bool:
        """Whether a decision indexed now was made before changes already re-screened:
        then it is re-screened on its own."""
        version = version_of(record.get("data_version"))
        return mark is not None and (version is None or version < mark[1])

    def index(self) -> int:
        """Watch the decisions recorded since the last look; how many were new (0 when
        another thread or process is indexing right now)."""
        if not self._lock.acquire(blocking=False):
            return 0
        try:
            with self._process_lock() as held:
                return self._index() if held else 0
        finally:
            self._lock.release()

    @contextlib.contextmanager
    def _process_lock(self) -> Any:
        if self._lock_path is None:
            yield True
            return
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def _index(self) -> int:
        added = 0
        while True:
            cursor = int(self.store.meta(CURSOR) or 0)
            position, records = self._outbox.followed(cursor, BATCH)
            added += self._take(records)
            if position != cursor:
                self.store.set_meta(CURSOR, str(position))
            if len(records) < BATCH or position == cursor:
                return added

    def _take(self, records: list[dict[str, Any]]) -> int:
        decisions = [r for r in records if r.get("kind") == "decision"]
        for record in records:
            if record.get("kind") == "post_check":
                self.store.settle_degraded(record)
        if not decisions:
            return 0
        case_ids = [c for c in ((r.get("transaction") or {}).get("case_id") for r in decisions)
                    if c is not None]
        known = self.store.cases(case_ids)
        mark = self.mark()
        items = []
        for record in decisions:
            case_id = (record.get("transaction") or {}).get("case_id")
            closed_at = known.get(case_id) if case_id is not None else None
            closed = case_id is None or (closed_at is not None and dt.datetime.fromisoformat(
                closed_at) >= dt.datetime.fromisoformat(str(record["created_at"])))
            items.append((record, CLOSED if closed else OPEN, self.flagged(record, mark),
                          self.keep_until(record)))
        added, refused = self.store.add_watches(items, self.watch_limit)
        if refused:
            self.store.add_meta_count(REFUSED, refused)
            logger.error("the watch list is full (%d decisions watched or kept for lifting, "
                         "watch_limit): %d decisions are not watched; close finished cases "
                         "(close_case) or raise CREDIT_CHECK_WATCH_LIMIT", self.watch_limit,
                         refused)
        self._open_cases(decisions, known)
        return added

    def _open_cases(self, decisions: list[dict[str, Any]], known: dict[str, Any]) -> None:
        first: dict[str, dict[str, Any]] = {}
        for record in decisions:
            case_id = (record.get("transaction") or {}).get("case_id")
            if case_id is not None and case_id not in known:
                first.setdefault(case_id, record)
        if not first:
            return
        for case_id in self.store.open_cases((c, str(r["created_at"])) for c, r in first.items()):
            try:
                self._outbox.write(case_opened_record(first[case_id]))
            except OutboxError:
                self.store.forget_case(case_id)
                raise


def local_indexer(directory: Path, outbox: Outbox, cipher: FieldCipher, *, watch_limit: int,
                  lift_retention: float) -> Indexer:
    """The indexer of a data directory's follow-up (the sender process's)."""
    from credit_check._lifecycle._db import open_tables

    return Indexer(LifecycleStore(open_tables(directory, None), cipher), outbox,
                   watch_limit=watch_limit, lift_retention=lift_retention,
                   lock_path=directory / INDEX_LOCK)
