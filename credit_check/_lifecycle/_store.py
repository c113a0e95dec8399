"""The lifecycle's state, on either engine (``_db``): the watch list with each watched
decision's current baseline, the decision → entry index for lifting, the cases seen and
closed, the entries lifted but not yet surfaced, the events shown by ``credit-check
cases``, and the commitment ledger.

Every method is one transaction. Rows are found by decision id, case id (not personal:
the outbox keeps it in clear too), subject-id prefix (4 bytes of a hash, as the signed
snapshot publishes it), or a keyed hash; everything else is sealed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from credit_check._crypto import FieldCipher, id_prefix
from credit_check._lifecycle._db import Tables
from credit_check._models import Outcome

logger = logging.getLogger("credit_check.lifecycle")

OPEN, CLOSED = 0, 1
C_OPEN, C_FULFILLED, C_WAIVED, C_BREACHED = 0, 1, 2, 3
COMMITMENT_STATES = {C_OPEN: "open", C_FULFILLED: "fulfilled", C_WAIVED: "waived",
                     C_BREACHED: "breached"}
_WATCH_AAD = b"credit-check/watch/v1"
_EVENT_AAD = b"credit-check/watch-event/v1"
_COMMITMENT_AAD = b"credit-check/commitment/v1"
_CHUNK = 500


def _query(statement: str, args: Sequence[Any]) -> Callable[[Any], list[Any]]:
    """A read of one statement, as a transaction's work."""
    return lambda conn: list(conn.execute(statement, args).fetchall())


def version_of(data_version: Any) -> int | None:
    """A record's data version as a snapshot version number (None: not one)."""
    try:
        return int(data_version)
    except (TypeError, ValueError):
        return None


# What the local match step reads of a watched decision (nothing personal), as the
# database gives it: (decision_id, prefix, flagged 0/1, listed 0/1). Plain tuples: 100,000
# are read at every re-screen, and building an object each would double the read.
WatchRow = tuple[str, int, int, int]


class LifecycleStore:
    """The lifecycle tables of one data directory (or outbox database).

    Args:
        tables: the engine.
        cipher: the data directory's cipher (seals records, makes the keyed hashes).
    """

    def __init__(self, tables: Tables, cipher: FieldCipher) -> None:
        self.tables = tables
        self._cipher = cipher

    # -- sealing -----------------------------------------------------------------------

    def _seal(self, data: dict[str, Any], aad: bytes) -> bytes:
        return self._cipher.encrypt(json.dumps(data, ensure_ascii=False).encode(), aad)

    def _open(self, blob: Any, aad: bytes) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self._cipher.decrypt(bytes(blob), aad))
        return data

    def entry_key(self, entry_id: str) -> bytes:
        """The index key of a list entry (the decision → entry index is not readable)."""
        return self._cipher.keyed_hash("entry", entry_id)

    def subject_key(self, subject_id: str) -> bytes:
        """The index key of a subject id (commitments are found by subject)."""
        return self._cipher.keyed_hash("subject", subject_id)

    # -- meta --------------------------------------------------------------------------

    def meta(self, name: str) -> str | None:
        rows = self.tables.run("read the watch list", lambda c: c.execute(
            "SELECT value FROM credit_check_lc_meta WHERE name = ?", (name,)).fetchall())
        return str(rows[0][0]) if rows else None

    def set_meta(self, name: str, value: str) -> None:
        self.tables.run("write the watch list", lambda c: c.execute(
            "INSERT INTO credit_check_lc_meta (name, value) VALUES (?, ?) ON CONFLICT (name) "
            "DO UPDATE SET value = excluded.value", (name, value)))

    def add_meta_count(self, name: str, n: int) -> None:
        """Add ``n`` to a counter (one statement: processes counting at once lose none)."""
        self.tables.run("write the watch list", lambda c: c.execute(
            "INSERT INTO credit_check_lc_meta (name, value) VALUES (?, ?) ON CONFLICT (name) "
            "DO UPDATE SET value = CAST(CAST(credit_check_lc_meta.value AS BIGINT) + "
            "CAST(excluded.value AS BIGINT) AS TEXT)", (name, str(n))))

    # -- watches -----------------------------------------------------------------------

    def _row(self, record: dict[str, Any], *, state: int, flagged: bool, keep_until: float,
             watch_until: float | None) -> tuple[Any, ...]:
        return (record["decision_id"], (record.get("transaction") or {}).get("case_id"),
                id_prefix(record["subject"]["id"]), state, int(flagged),
                int(bool(record.get("degraded"))), int(bool(record.get("matches"))),
                record["outcome"], str(record["created_at"]), watch_until, keep_until,
                self._seal(record, _WATCH_AAD))

    def add_watches(self, items: Sequence[tuple[dict[str, Any], int, bool, float]],
                    limit: int) -> tuple[int, int]:
        """Watch decisions (``(record, state, flagged, keep_until)``) not watched yet, up to
        ``limit`` decisions held (watched, or kept for lifting); returns (added, refused at
        the bound)."""
        rows = [self._row(r, state=s, flagged=f, keep_until=k, watch_until=None)
                for r, s, f, k in items]
        entries = [(self.entry_key(m["entry_id"]), r["decision_id"]) for r, _, _, _ in items
                   for m in r.get("measures") or () if m.get("entry_id")]

        def work(conn: Any) -> tuple[int, int]:
            (held,) = conn.execute("SELECT COUNT(*) FROM credit_check_watch").fetchall()[0]
            added = refused = 0
            for row in rows:
                if held >= limit:
                    refused += 1
                    continue
                cur = conn.execute(
                    "INSERT INTO credit_check_watch (decision_id, case_id, prefix, state, "
                    "flagged, degraded, listed, outcome, decided_at, watch_until, keep_until, "
                    "baseline) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (decision_id) DO NOTHING", row)
                if cur.rowcount == 1:
                    added += 1
                    held += 1
            taken = {row[0] for row in rows}
            if entries:
                conn.executemany(
                    "INSERT INTO credit_check_watch_entry (entry_key, decision_id) VALUES "
                    "(?, ?) ON CONFLICT DO NOTHING", [e for e in entries if e[1] in taken])
            return added, refused

        return self.tables.run("write the watch list", work)

    def settle_degraded(self, record: dict[str, Any]) -> bool:
        """Take a post-check's record as the baseline of the degraded decision it closes
        (once: only while that watch still waits for it). True when it did."""
        blob = self._seal(record, _WATCH_AAD)

        def work(conn: Any) -> bool:
            cur = conn.execute(
                "UPDATE credit_check_watch SET degraded = 0, flagged = 1, outcome = ?, "
                "listed = ?, baseline = ? WHERE decision_id = ? AND degraded = 1",
                (record["outcome"], int(bool(record.get("matches"))), blob,
                 record["decision_id"]))
            return bool(cur.rowcount == 1)

        return self.tables.run("write the watch list", work)

    def watch(self, record: dict[str, Any], *, close: bool, watch_until: float | None,
              keep_until: float, flagged: bool) -> None:
        """A case outcome: close the decision's watch (a final result), or keep it watched
        until ``watch_until`` (a grant); the decision is watched from here if it was not."""
        row = self._row(record, state=CLOSED if close else OPEN, flagged=flagged,
                        keep_until=keep_until, watch_until=watch_until)

        def work(conn: Any) -> None:
            conn.execute(
                "INSERT INTO credit_check_watch (decision_id, case_id, prefix, state, flagged, "
                "degraded, listed, outcome, decided_at, watch_until, keep_until, baseline) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (decision_id) DO "
                "UPDATE SET state = excluded.state, watch_until = excluded.watch_until, "
                "keep_until = CASE WHEN excluded.keep_until > credit_check_watch.keep_until "
                "THEN excluded.keep_until ELSE credit_check_watch.keep_until END", row)
            conn.executemany(
                "INSERT INTO credit_check_watch_entry (entry_key, decision_id) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                [(self.entry_key(m["entry_id"]), record["decision_id"])
                 for m in record.get("measures") or () if m.get("entry_id")])

        self.tables.run("write the watch list", work)

    def close_case(self, case_id: str, at: str, now: float) -> int:
        """Close every watch of a case (grants watched for a period stay watched); later
        decisions recorded before ``at`` are closed as they are indexed. How many closed."""

        def work(conn: Any) -> int:
            conn.execute("INSERT INTO credit_check_case (case_id, opened_at, closed_at) VALUES "
                         "(?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET closed_at = "
                         "excluded.closed_at", (case_id, at, at))
            cur = conn.execute(
                "UPDATE credit_check_watch SET state = 1 WHERE case_id = ? AND state = 0 AND "
                "(watch_until IS NULL OR watch_until <= ?)", (case_id, now))
            return int(cur.rowcount)

        return self.tables.run("close a case", work)

    def cases(self, case_ids: Iterable[str]) -> dict[str, str | None]:
        """The known cases among ``case_ids``: case id → when closed (None: open)."""
        wanted = list(dict.fromkeys(case_ids))
        found: dict[str, str | None] = {}
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = self.tables.run("read the watch list", _query(
                f"SELECT case_id, closed_at FROM credit_check_case WHERE case_id IN ({marks})",  # noqa: S608
                chunk))
            found.update({str(r[0]): r[1] for r in rows})
        return found

    def open_cases(self, cases: Iterable[tuple[str, str]]) -> list[str]:
        """Note cases seen for the first time (``(case_id, at)``); those that were new."""

        def work(conn: Any) -> list[str]:
            new = []
            for case_id, at in cases:
                cur = conn.execute("INSERT INTO credit_check_case (case_id, opened_at) VALUES "
                                   "(?, ?) ON CONFLICT (case_id) DO NOTHING", (case_id, at))
                if cur.rowcount == 1:
                    new.append(case_id)
            return new

        return self.tables.run("write the watch list", work)

    def forget_case(self, case_id: str) -> None:
        """Undo :meth:`open_cases` for a case whose record could not be written."""
        self.tables.run("write the watch list", lambda c: c.execute(
            "DELETE FROM credit_check_case WHERE case_id = ? AND closed_at IS NULL",
            (case_id,)))

    def open_watches(self) -> list[WatchRow]:
        """Every open, settled watch, for the local match step."""
        rows: list[WatchRow] = self.tables.run("read the watch list", lambda c: c.execute(
            "SELECT decision_id, prefix, flagged, listed FROM credit_check_watch "
            "WHERE state = 0 AND degraded = 0").fetchall())
        return rows

    def baselines(self, decision_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The current baseline records of watched decisions (open or kept)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(decision_ids), _CHUNK):
            chunk = list(decision_ids[start : start + _CHUNK])
            marks = ", ".join("?" * len(chunk))
            rows = self.tables.run("read the watch list", _query(
                "SELECT decision_id, baseline FROM credit_check_watch WHERE decision_id IN "  # noqa: S608
                f"({marks})", chunk))
            found.update({str(r[0]): self._open(r[1], _WATCH_AAD) for r in rows})
        return found

    def rebase(self, updates: Sequence[dict[str, Any]], unflag: Iterable[str]) -> None:
        """Make each new record the baseline of its decision (matching entries indexed for
        lifting), and clear the flag of decisions re-screened individually."""
        rows = [(r["outcome"], int(bool(r.get("matches"))), self._seal(r, _WATCH_AAD),
                 r["decision_id"]) for r in updates]
        entries = [(self.entry_key(m["entry_id"]), r["decision_id"]) for r in updates
                   for m in r.get("measures") or () if m.get("entry_id")]
        done = [(d,) for d in unflag]

        def work(conn: Any) -> None:
            conn.executemany("UPDATE credit_check_watch SET outcome = ?, listed = ?, "
                             "baseline = ?, flagged = 0 WHERE decision_id = ?", rows)
            conn.executemany("UPDATE credit_check_watch SET flagged = 0 WHERE decision_id = ?",
                             done)
            conn.executemany("INSERT INTO credit_check_watch_entry (entry_key, decision_id) "
                             "VALUES (?, ?) ON CONFLICT DO NOTHING", entries)

        self.tables.run("write the watch list", work)

    def flag_all(self) -> None:
        """Every open watch needs an individual re-screen (the sync history was lost)."""
        self.tables.run("write the watch list", lambda c: c.execute(
            "UPDATE credit_check_watch SET flagged = 1 WHERE state = 0"))

    def expire(self, now: float) -> int:
        """Close grants whose watch period ended; delete closed watches past their keeping
        (a decision that applied no measure is kept for nothing). How many deleted."""

        def work(conn: Any) -> int:
            conn.execute("UPDATE credit_check_watch SET state = 1 WHERE state = 0 AND "
                         "watch_until IS NOT NULL AND watch_until <= ?", (now,))
            gone = [r[0] for r in conn.execute(
                "SELECT decision_id FROM credit_check_watch WHERE state = 1 AND "
                "keep_until <= ?", (now,)).fetchall()]
            conn.executemany("DELETE FROM credit_check_watch_entry WHERE decision_id = ?",
                             [(d,) for d in gone])
            conn.executemany("DELETE FROM credit_check_watch WHERE decision_id = ?",
                             [(d,) for d in gone])
            return len(gone)

        return self.tables.run("clean the watch list", work)

    # -- lifting -----------------------------------------------------------------------

    def add_lifts(self, entry_ids: Iterable[str], now: float) -> None:
        """Entries removed as wrong (from a signed delta), to surface by the follower."""
        rows = [(e, now) for e in entry_ids]
        if rows:
            self.tables.run("write the watch list", lambda c: c.executemany(
                "INSERT INTO credit_check_lift (entry_id, seen_at) VALUES (?, ?) "
                "ON CONFLICT (entry_id) DO NOTHING", rows))

    def pending_lifts(self) -> dict[str, list[str]]:
        """Each pending lifted entry id → the decisions whose measures used it."""
        ids = [str(r[0]) for r in self.tables.run("read the watch list", lambda c: c.execute(
            "SELECT entry_id FROM credit_check_lift ORDER BY seen_at").fetchall())]
        found: dict[str, list[str]] = {}
        for entry_id in ids:
            key = self.entry_key(entry_id)
            found[entry_id] = [str(r[0]) for r in self.tables.run(
                "read the watch list", _query(
                    "SELECT decision_id FROM credit_check_watch_entry WHERE entry_key = ?",
                    (key,)))]
        return found

    def lifted(self, entry_id: str) -> None:
        """A lifted entry surfaced: forget it and its index rows."""
        key = self.entry_key(entry_id)

        def work(conn: Any) -> None:
            conn.execute("DELETE FROM credit_check_watch_entry WHERE entry_key = ?", (key,))
            conn.execute("DELETE FROM credit_check_lift WHERE entry_id = ?", (entry_id,))

        self.tables.run("write the watch list", work)

    # -- events (credit-check cases) -----------------------------------------------------

    def add_event(self, kind: str, record: dict[str, Any], previous: Outcome, at: str,
                  shown: dict[str, Any]) -> bool:
        """Keep a re-screen that changed a case (``changed`` or ``lift``) for display;
        False when that record was kept already."""
        row = (record["decision_id"], (record.get("transaction") or {}).get("case_id"), kind,
               previous.value, record["outcome"], record["record_id"], at,
               self._seal(shown, _EVENT_AAD))
        return bool(self.tables.run("write the watch list", lambda c: c.execute(
            "INSERT INTO credit_check_event (decision_id, case_id, kind, previous, outcome, "
            "record_id, at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (record_id) "
            "DO NOTHING", row).rowcount == 1))

    def events(self, kinds: Sequence[str]) -> list[dict[str, Any]]:
        """Kept events of ``kinds``, oldest first, each with its sealed details opened."""
        marks = ", ".join("?" * len(kinds))
        rows = self.tables.run("read the watch list", lambda c: c.execute(
            "SELECT decision_id, case_id, kind, previous, outcome, record_id, at, data FROM "  # noqa: S608
            f"credit_check_event WHERE kind IN ({marks}) ORDER BY seq", list(kinds)).fetchall())
        return [{"decision_id": r[0], "case_id": r[1], "kind": r[2], "previous": r[3],
                 "outcome": r[4], "record_id": r[5], "at": r[6],
                 **self._open(r[7], _EVENT_AAD)} for r in rows]

    def counts(self) -> dict[str, int]:
        """Open and kept watches, and commitments by state."""

        def work(conn: Any) -> dict[str, int]:
            watches = dict(conn.execute("SELECT state, COUNT(*) FROM credit_check_watch "
                                        "GROUP BY state").fetchall())
            commitments = dict(conn.execute("SELECT state, COUNT(*) FROM "
                                            "credit_check_commitment GROUP BY state").fetchall())
            return {"watched": int(watches.get(OPEN, 0)), "kept": int(watches.get(CLOSED, 0)),
                    **{f"commitments_{name}": int(commitments.get(state, 0))
                       for state, name in COMMITMENT_STATES.items()}}

        return self.tables.run("read the watch list", work)

    # -- commitments -------------------------------------------------------------------

    def add_commitment(self, commitment_id: str, decision_id: str, case_id: str | None,
                       subject_id: str, due: str, created_at: str, data: dict[str, Any]) -> None:
        row = (commitment_id, decision_id, case_id, self.subject_key(subject_id), C_OPEN, due,
               created_at, self._seal(data, _COMMITMENT_AAD))
        self.tables.run("write the commitment ledger", lambda c: c.execute(
            "INSERT INTO credit_check_commitment (commitment_id, decision_id, case_id, "
            "subject_key, state, due, created_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row))

    def remove_commitment(self, commitment_id: str) -> None:
        """Undo :meth:`add_commitment` when its record could not be written."""
        self.tables.run("write the commitment ledger", lambda c: c.execute(
            "DELETE FROM credit_check_commitment WHERE commitment_id = ?", (commitment_id,)))

    def _commitment(self, row: Sequence[Any]) -> dict[str, Any]:
        return {**self._open(row[4], _COMMITMENT_AAD), "commitment_id": row[0],
                "state": COMMITMENT_STATES[int(row[1])], "due": row[2], "case_id": row[3]}

    _COLUMNS = "commitment_id, state, due, case_id, data"

    def commitment(self, commitment_id: str) -> dict[str, Any] | None:
        rows = self.tables.run("read the commitment ledger", lambda c: c.execute(
            f"SELECT {self._COLUMNS} FROM credit_check_commitment WHERE commitment_id = ?",  # noqa: S608
            (commitment_id,)).fetchall())
        return self._commitment(rows[0]) if rows else None

    def update_commitment(self, commitment_id: str, state: int, data: dict[str, Any],
                          only_from: Sequence[int]) -> bool:
        """Change a commitment's state and details if it is in one of ``only_from``
        (processes racing on one commitment: one wins). True when changed."""
        marks = ", ".join("?" * len(only_from))
        blob = self._seal(data, _COMMITMENT_AAD)
        return bool(self.tables.run("write the commitment ledger", lambda c: c.execute(
            "UPDATE credit_check_commitment SET state = ?, data = ? WHERE commitment_id = ? "  # noqa: S608
            f"AND state IN ({marks})", (state, blob, commitment_id, *only_from)).rowcount == 1))

    def commitments(self, subject_id: str | None = None, *, overdue_on: str | None = None
                    ) -> list[dict[str, Any]]:
        """Commitments, oldest first: of one subject, or the open ones due before
        ``overdue_on`` (an ISO date), or all."""
        args: tuple[Any, ...]
        if overdue_on is not None:
            where, args = "WHERE state = 0 AND due < ?", (overdue_on,)
        elif subject_id is not None:
            where, args = "WHERE subject_key = ?", (self.subject_key(subject_id),)
        else:
            where, args = "", ()
        rows = self.tables.run("read the commitment ledger", lambda c: c.execute(
            f"SELECT {self._COLUMNS} FROM credit_check_commitment {where} "  # noqa: S608
            "ORDER BY created_at, commitment_id", args).fetchall())
        return [self._commitment(r) for r in rows]
