"""Received feedback records in the SQL store: sealed at rest with only non-personal
columns in clear, de-duplicated by the database's unique constraint on ``record_id``
(``INSERT … ON CONFLICT DO NOTHING RETURNING``, the same in SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from credit_check._server._personal import PersonalData
from credit_check._server._schema import set_meta
from credit_check._server._store import Intake, now_cst

# Rows per INSERT statement: 10 parameters each, well under SQLite's 32,766.
INSERT_ROWS = 500
_INSERT = ("INSERT INTO feedback (record_id, department, kind, scenario, outcome, hits, "
           "measures, day, received_at, data) VALUES {} ON CONFLICT (record_id) DO NOTHING "
           "RETURNING record_id")


class FeedbackTable:
    """The feedback part of a SQL store (mixed into it)."""

    personal: PersonalData

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def _add_feedback(self, records: list[Intake]) -> tuple[list[str], list[str]]:
        if not records:
            return [], []
        received = now_cst().isoformat()
        # Sealed before the write lock is taken: the lock is held for the inserts only.
        rows = [(r.record_id, r.department, r.kind, r.scenario, r.outcome, r.hits,
                 r.measures, r.day, received, self.personal.seal(r.text, f"feedback:{r.record_id}"))
                for r in records]
        inserted: set[str] = set()
        with self._tx() as conn:
            for start in range(0, len(rows), INSERT_ROWS):
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
                row = conn.execute("SELECT value FROM meta WHERE name = 'duplicates'"
                                   ).fetchone()
                set_meta(conn, "duplicates", str(int(row[0] if row else 0) + len(duplicates)))
        return accepted, duplicates

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
        return out
