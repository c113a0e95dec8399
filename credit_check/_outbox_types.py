"""The outbox's SQLite schema and the value types it hands out: status, claimed records."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from typing import Any

# The file name in the data directory; the Checker and the CLI both use it.
OUTBOX_FILE = "outbox.sqlite3"
PENDING, DELIVERED, DEAD = 0, 1, 2
BUSY_TIMEOUT = 10.0
# How long fork() waits for an outbox operation in another thread to finish.
FORK_LOCK_WAIT = 5.0
# Without a running sender nobody checkpoints; past this many adds, add() does it itself.
SELF_CHECKPOINT_ADDS = 50_000
FULL_WARNING_INTERVAL = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    case_id TEXT,
    scenario TEXT NOT NULL,
    outcome TEXT NOT NULL,
    created_at TEXT NOT NULL,
    added_at REAL NOT NULL,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    lease_owner TEXT,
    delivered_at REAL,
    dead_reason TEXT,
    hmac TEXT NOT NULL,
    body BLOB NOT NULL
);
-- No index on record_id: ids are random, and the service de-duplicates by id anyway.
CREATE INDEX IF NOT EXISTS records_pending ON records(seq) WHERE state = 0;
CREATE INDEX IF NOT EXISTS records_dead ON records(seq) WHERE state = 2;
CREATE INDEX IF NOT EXISTS records_delivered ON records(delivered_at) WHERE state = 1;
CREATE INDEX IF NOT EXISTS records_decision ON records(decision_id);
CREATE INDEX IF NOT EXISTS records_case ON records(case_id) WHERE case_id IS NOT NULL;
"""

INSERT = (
    "INSERT INTO records (record_id, kind, decision_id, case_id, scenario, outcome, "
    "created_at, added_at, hmac, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """What the outbox holds.

    Attributes:
        pending: records not yet acknowledged by the service (including those in flight).
        delivered: acknowledged records still kept (pruned after the retention period).
        dead_lettered: records the service rejected; kept until an operator deals with them.
        oldest_pending_age: seconds since the oldest pending record was added, or None.
        full: ``pending`` reached ``max_pending`` (records are still written, see docs).
        path: the database file.
        dead_reasons: the most frequent rejection reasons with their counts.
    """

    pending: int
    delivered: int
    dead_lettered: int
    oldest_pending_age: float | None
    full: bool
    path: str
    dead_reasons: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Claimed:
    """A record leased to a sender: its row and its JSON text (with its ``hmac``), ready
    to send as it is."""

    seq: int
    record_id: str
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        """The record as a dict."""
        data: dict[str, Any] = json.loads(self.raw)
        return data


class Ticket:
    """Rows waiting for a group commit (one caller's, committed together)."""

    __slots__ = ("done", "error", "rows")

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.done = False
        self.error: sqlite3.Error | None = None


def process_alive(owner: str) -> bool:
    """Whether the process named in a lease owner (``"<pid>:<token>"``) still runs here."""
    try:
        pid = int(owner.split(":", 1)[0])
    except ValueError:
        return True  # an owner we cannot read: let its lease expire instead
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
