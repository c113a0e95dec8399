"""The delivery store's SQLite schema and the value types the outbox hands out."""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

# File names in the data directory; the Checker and the CLI both use them.
OUTBOX_FILE = "outbox.sqlite3"
STATE_FILE = "outbox.state"
PENDING, DELIVERED, DEAD, UNDECRYPTABLE = 0, 1, 2, 3
BUSY_TIMEOUT = 10.0
FULL_WARNING_INTERVAL = 60.0
SCHEMA_VERSION = 2

# Version 1 (wave 1) had the records table alone; version 2 adds meta, the journals'
# import offsets and the quarantine, and drops two indexes only the sender would pay for
# (pruning and status scan instead). The records table is unchanged, so a wave-1 outbox
# is migrated by adding tables and its pending records are delivered as before.
DROPPED = ("records_dead", "records_delivered")
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
CREATE INDEX IF NOT EXISTS records_pending ON records(seq) WHERE state = 0;
CREATE INDEX IF NOT EXISTS records_decision ON records(decision_id);
CREATE INDEX IF NOT EXISTS records_case ON records(case_id) WHERE case_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journals (name TEXT PRIMARY KEY, offset INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    offset INTEGER NOT NULL,
    reason TEXT NOT NULL,
    data BLOB NOT NULL,
    added_at REAL NOT NULL
);
"""

INSERT = (
    "INSERT INTO records (record_id, kind, decision_id, case_id, scenario, outcome, "
    "created_at, added_at, hmac, body, lease_until, lease_owner) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """What the outbox holds.

    Attributes:
        pending: records not yet acknowledged by the service (in the store, in flight or
            not, plus those still in journals waiting to be imported).
        delivered: acknowledged records still kept (pruned after the retention period).
        dead_lettered: records the service rejected; kept until an operator deals with them.
        oldest_pending_age: seconds since the oldest pending record was stored, or None.
        full: ``pending`` reached ``max_pending`` (records are still written, see docs).
        path: the store's database file.
        dead_reasons: the most frequent rejection reasons with their counts.
        undecryptable: records (or damaged journal stretches) kept aside because they do
            not decrypt or parse with the current key — an error, never delivered silently
            nor dropped; ``credit-check outbox salvage`` retries them.
        journal_bytes: bytes in journals not yet imported into the store.
        damaged: store files found damaged, moved aside, awaiting salvage.
        sender_pid: the process holding the sender role, if any.
    """

    pending: int
    delivered: int
    dead_lettered: int
    oldest_pending_age: float | None
    full: bool
    path: str
    dead_reasons: tuple[tuple[str, int], ...] = ()
    undecryptable: int = 0
    journal_bytes: int = 0
    damaged: tuple[str, ...] = ()
    sender_pid: int | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A record leased to the sender: its row and its JSON text (with its ``hmac``), ready
    to send as it is."""

    seq: int
    record_id: str
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        """The record as a dict."""
        data: dict[str, Any] = json.loads(self.raw)
        return data


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


def kinds_clause(kinds: Collection[str] | None) -> tuple[str, tuple[str, ...]]:
    """`` AND kind IN (?, …)`` and its arguments, for reads limited to the record kinds a
    service accepts (nothing when ``kinds`` is None)."""
    if kinds is None:
        return "", ()
    names = tuple(sorted(kinds))
    return f" AND kind IN ({', '.join('?' * len(names)) or 'NULL'})", names
