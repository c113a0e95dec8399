"""Received feedback records in the SQL store: sealed at rest with only non-personal
columns in clear, de-duplicated by the database's unique constraint on ``record_id``
(``INSERT … ON CONFLICT DO NOTHING RETURNING``, the same in SQLite and PostgreSQL), read
back in pages in the order they were stored.

The clear columns are what the monitoring stats group by (``_stats``): department, kind,
scenario, outcome, day, region, the degraded flag, a keyed hash of the case, and in
``feedback_codes`` the codes of the lists matched and the measures applied.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from credit_check._server._personal import PersonalData
from credit_check._server._stats import feedback_stats
from credit_check._server._store import FeedbackPage, Intake, StatsQuery, now_cst

# Rows per INSERT statement: 13 parameters each, well under SQLite's 32,766.
INSERT_ROWS = 500
_INSERT = ("INSERT INTO feedback (record_id, department, kind, scenario, outcome, hits, "
           "measures, day, received_at, data, region, degraded, case_key) VALUES {} "
           "ON CONFLICT (record_id) DO NOTHING RETURNING record_id, seq")
_UNNEST = ("INSERT INTO feedback (record_id, department, kind, scenario, outcome, hits, "
           "measures, day, received_at, data, region, degraded, case_key) SELECT * FROM "
           "unnest(CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), "
           "CAST(? AS TEXT[]), CAST(? AS INTEGER[]), CAST(? AS INTEGER[]), CAST(? AS TEXT[]), "
           "CAST(? AS TEXT[]), CAST(? AS BYTEA[]), CAST(? AS TEXT[]), CAST(? AS INTEGER[]), "
           "CAST(? AS TEXT[])) ON CONFLICT (record_id) DO NOTHING RETURNING record_id, seq")
_INSERT_CODES = "INSERT INTO feedback_codes (seq, what, code) VALUES (?, ?, ?)"
_COUNT_DUPLICATES = (
    "INSERT INTO meta (name, value) VALUES ('duplicates', ?) ON CONFLICT (name) DO UPDATE "
    "SET value = CAST(CAST(meta.value AS BIGINT) + CAST(excluded.value AS BIGINT) AS TEXT)")
BACKFILL_ROWS = 2000


def record_facts(record: dict[str, Any]) -> tuple[str | None, bool, str,
                                                  tuple[str, ...], tuple[str, ...]]:
    """The non-personal facts of a (validated) record: region, degraded, the case's
    reference (its case id, else its decision), list codes matched, measure codes applied.

    Read from the record's JSON rather than a model, so that a record of a kind this
    version does not know (a newer SDK's) is counted the same way.
    """
    transaction = record.get("transaction") or {}
    region = transaction.get("region") or None
    case_id = transaction.get("case_id")
    case_ref = f"case:{case_id}" if case_id else f"decision:{record.get('decision_id')}"
    lists = tuple(sorted({str(m.get("list_code")) for m in record.get("matches") or []
                          if isinstance(m, dict) and m.get("list_code")}))
    measures = tuple(sorted({str(m.get("code")) for m in record.get("measures") or []
                             if isinstance(m, dict) and m.get("code")}))
    return region, bool(record.get("degraded")), case_ref, lists, measures


def sealed_rows(personal: PersonalData, records: list[Intake]) -> list[tuple[Any, ...]]:
    """The feedback table's rows of verified records, each record sealed."""
    received = now_cst().isoformat()
    return [(r.record_id, r.department, r.kind, r.scenario, r.outcome, r.hits, r.measures,
             r.day, received, personal.seal(r.text, f"feedback:{r.record_id}"), r.region,
             int(r.degraded),
             personal.case_key(r.department, r.case_ref) if r.case_ref else None)
            for r in records]


def _code_rows(seq: int, lists: tuple[str, ...], measures: tuple[str, ...]
               ) -> list[tuple[int, str, str]]:
    return [(seq, "list", c) for c in lists] + [(seq, "measure", c) for c in measures]


def insert_feedback(conn: Any, records: list[Intake], rows: list[tuple[Any, ...]], *,
                    arrays: bool = False) -> tuple[list[str], list[str]]:
    """Insert sealed feedback rows inside the caller's transaction; (accepted, duplicates).

    Args:
        arrays: one statement whose parameters are the columns as arrays (PostgreSQL:
            a short statement that is parsed once and prepared, whatever the batch size).
    """
    inserted: dict[str, int] = {}
    if arrays:
        columns = [list(column) for column in zip(*rows, strict=True)]
        inserted.update((r[0], int(r[1])) for r in conn.execute(_UNNEST, columns).fetchall())
    for start in range(0, 0 if arrays else len(rows), INSERT_ROWS):
        chunk = rows[start : start + INSERT_ROWS]
        sql = _INSERT.format(",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"]
                                      * len(chunk)))
        inserted.update((r[0], int(r[1])) for r in conn.execute(
            sql, [value for row in chunk for value in row]).fetchall())
    accepted: list[str] = []
    duplicates: list[str] = []
    codes: list[tuple[int, str, str]] = []
    for r in records:
        seq = inserted.pop(r.record_id, None)  # a repeat later in the batch is a duplicate
        if seq is None:
            duplicates.append(r.record_id)
            continue
        accepted.append(r.record_id)
        codes += _code_rows(seq, r.lists, r.measure_codes)
    if codes:
        conn.executemany(_INSERT_CODES, codes)
    if duplicates:
        # One statement: instances counting at once on one database lose no count.
        conn.execute(_COUNT_DUPLICATES, (str(len(duplicates)),))
    return accepted, duplicates


def read_page(conn: Any, personal: PersonalData, since: str | None, after: int,
              limit: int) -> FeedbackPage:
    """A page of records in storage order (``seq``), one more row read to know whether
    more follow."""
    rows = conn.execute(
        "SELECT seq, record_id, data FROM feedback WHERE received_at >= ? AND seq > ? "
        "ORDER BY seq LIMIT ?", (since or "", after, limit + 1)).fetchall()
    page = rows[:limit]
    records = [json.loads(personal.open(blob, f"feedback:{record_id}"))
               for _, record_id, blob in page]
    return FeedbackPage(records, int(page[-1][0]) if page else after, len(rows) > limit)


def backfill_facts(conn: Any, personal: PersonalData) -> int:
    """Fill the stats columns of every stored record from its sealed text (the migration
    to schema 3, inside the caller's transaction); returns the number of records."""
    last = 0
    done = 0
    while rows := conn.execute(
            "SELECT seq, record_id, department, data FROM feedback WHERE seq > ? "
            "ORDER BY seq LIMIT ?", (last, BACKFILL_ROWS)).fetchall():
        updates: list[tuple[Any, ...]] = []
        codes: list[tuple[int, str, str]] = []
        for seq, record_id, department, blob in rows:
            record = json.loads(personal.open(blob, f"feedback:{record_id}"))
            region, degraded, case_ref, lists, measures = record_facts(record)
            updates.append((region, int(degraded), personal.case_key(department, case_ref),
                            seq))
            codes += _code_rows(int(seq), lists, measures)
        conn.executemany("UPDATE feedback SET region = ?, degraded = ?, case_key = ? "
                         "WHERE seq = ?", updates)
        if codes:
            conn.executemany(_INSERT_CODES, codes)
        last = int(rows[-1][0])
        done += len(rows)
    return done


class FeedbackTable:
    """The feedback part of a SQL store (mixed into it)."""

    personal: PersonalData

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _conn(self) -> Any:
        raise NotImplementedError

    def _add_feedback(self, records: list[Intake]) -> tuple[list[str], list[str]]:
        if not records:
            return [], []
        # Sealed before the write lock is taken: the lock is held for the inserts only.
        rows = sealed_rows(self.personal, records)
        with self._tx() as conn:
            return insert_feedback(conn, records, rows)

    def feedback(self, since: str | None, limit: int) -> list[dict[str, Any]]:
        """The records received at or after ``since`` (CST ISO text), in order."""
        return list(self._records(since, limit))

    def _records(self, since: str | None, limit: int) -> Iterator[dict[str, Any]]:
        cursor = self._conn().execute(
            "SELECT record_id, data FROM feedback WHERE received_at >= ? ORDER BY seq LIMIT ?",
            (since or "", limit))
        while batch := cursor.fetchmany(1000):
            for record_id, blob in batch:
                yield json.loads(self.personal.open(blob, f"feedback:{record_id}"))

    def feedback_page(self, since: str | None, after: int, limit: int) -> FeedbackPage:
        return read_page(self._conn(), self.personal, since, after, limit)

    def _feedback_stats(self, conn: Any, query: StatsQuery) -> dict[str, Any]:
        return feedback_stats(conn, self.personal, query)
