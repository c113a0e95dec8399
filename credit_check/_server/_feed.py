"""Received feedback records in the SQL store: sealed at rest with only non-personal
columns in clear, de-duplicated by the database's unique constraint on ``record_id``
(``INSERT … ON CONFLICT DO NOTHING RETURNING``, the same in SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from credit_check._server._personal import PersonalData
from credit_check._server._store import Intake, now_cst

# Rows per INSERT statement: 10 parameters each, well under SQLite's 32,766.
INSERT_ROWS = 500
_INSERT = ("INSERT INTO feedback (record_id, department, kind, scenario, outcome, hits, "
           "measures, day, received_at, data) VALUES {} ON CONFLICT (record_id) DO NOTHING "
           "RETURNING record_id")
_UNNEST = ("INSERT INTO feedback (record_id, department, kind, scenario, outcome, hits, "
           "measures, day, received_at, data) SELECT * FROM unnest(CAST(? AS TEXT[]), "
           "CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), "
           "CAST(? AS INTEGER[]), CAST(? AS INTEGER[]), CAST(? AS TEXT[]), CAST(? AS TEXT[]), "
           "CAST(? AS BYTEA[])) ON CONFLICT (record_id) DO NOTHING RETURNING record_id")
_COUNT_DUPLICATES = (
    "INSERT INTO meta (name, value) VALUES ('duplicates', ?) ON CONFLICT (name) DO UPDATE "
    "SET value = CAST(CAST(meta.value AS BIGINT) + CAST(excluded.value AS BIGINT) AS TEXT)")


def sealed_rows(personal: PersonalData, records: list[Intake]) -> list[tuple[Any, ...]]:
    """The feedback table's rows of verified records, each record sealed."""
    received = now_cst().isoformat()
    return [(r.record_id, r.department, r.kind, r.scenario, r.outcome, r.hits, r.measures,
             r.day, received, personal.seal(r.text, f"feedback:{r.record_id}"))
            for r in records]


def insert_feedback(conn: Any, records: list[Intake], rows: list[tuple[Any, ...]], *,
                    arrays: bool = False) -> tuple[list[str], list[str]]:
    """Insert sealed feedback rows inside the caller's transaction; (accepted, duplicates).

    Args:
        arrays: one statement whose parameters are the columns as arrays (PostgreSQL:
            a short statement that is parsed once and prepared, whatever the batch size).
    """
    inserted: set[str] = set()
    if arrays:
        columns = [list(column) for column in zip(*rows, strict=True)]
        inserted.update(r[0] for r in conn.execute(_UNNEST, columns).fetchall())
    for start in range(0, 0 if arrays else len(rows), INSERT_ROWS):
        chunk = rows[start : start + INSERT_ROWS]
        sql = _INSERT.format(",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk)))
        inserted.update(r[0] for r in conn.execute(
            sql, [value for row in chunk for value in row]).fetchall())
    accepted: list[str] = []
    duplicates: list[str] = []
    for r in records:
        if r.record_id in inserted:
            inserted.discard(r.record_id)  # a repeat later in the batch is a duplicate
            accepted.append(r.record_id)
        else:
            duplicates.append(r.record_id)
    if duplicates:
        # One statement: instances counting at once on one database lose no count.
        conn.execute(_COUNT_DUPLICATES, (str(len(duplicates)),))
    return accepted, duplicates


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

    def _feedback_stats(self) -> dict[str, Any]:
        conn = self._conn()
        row = conn.execute("SELECT value FROM meta WHERE name = 'duplicates'").fetchone()
        out: dict[str, Any] = {"duplicates": int(row[0]) if row else 0}
        for column in ("scenario", "department", "day"):
            rows = conn.execute(
                f"SELECT {column}, COUNT(*), SUM(hits), SUM(measures) FROM feedback "  # noqa: S608
                f"WHERE kind = 'decision' GROUP BY {column} ORDER BY {column}").fetchall()
            out[f"by_{column}"] = [{column: r[0], "checks": r[1], "hits": r[2] or 0,
                                    "measures": r[3] or 0} for r in rows]
        total = conn.execute("SELECT COUNT(*), SUM(hits), SUM(measures) FROM feedback "
                             "WHERE kind = 'decision'").fetchone()
        out["total"] = {"checks": total[0], "hits": total[1] or 0, "measures": total[2] or 0}
        out["records"] = conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
        # Every record kind, the v1.1 lifecycle kinds included (DESIGN §9.6).
        out["by_kind"] = {str(k): int(n) for k, n in conn.execute(
            "SELECT kind, COUNT(*) FROM feedback GROUP BY kind ORDER BY kind").fetchall()}
        return out
