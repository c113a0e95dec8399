"""The monitoring figures (跟踪、监测、统计) of ``GET /v1/admin/stats``, computed in SQL from
the feedback table's clear columns, the same on SQLite and PostgreSQL.

A *check* is a ``decision`` record. A *case handled* is a case an approval system reported
(a ``case_opened`` record, or an ``outcome`` record); it counts as *checked* when a
``decision`` record of the same department names the same case (its case id, or for a
record without one, its decision). Coverage is checked cases ÷ cases handled, and the cases
handled without any check are listed, so an operator can follow them up.
"""

from __future__ import annotations

import json
from typing import Any

from credit_check._server._personal import PersonalData
from credit_check._server._store import StatsQuery

# Record kinds that say a case was handled; plain strings, so that a kind added later
# (by a newer SDK) needs no code here.
HANDLED_KINDS = ("case_opened", "outcome")
UNCHECKED_LISTED = 100
_BREAKDOWNS = ("scenario", "department", "day", "outcome", "region")


def _where(query: StatsQuery, alias: str = "") -> tuple[str, list[Any]]:
    """The period and department conditions (``AND …``) on the feedback table."""
    clauses: list[str] = []
    params: list[Any] = []
    for clause, value in ((f"{alias}day >= ?", query.since), (f"{alias}day < ?", query.until),
                          (f"{alias}department = ?", query.department)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return "".join(f" AND {c}" for c in clauses), params


def _ordered(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    # Sorted here rather than in SQL: SQLite and PostgreSQL order NULLs differently.
    return sorted(rows, key=lambda r: (r[key] is None, r[key] or ""))


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def feedback_stats(conn: Any, personal: PersonalData, query: StatsQuery) -> dict[str, Any]:
    """Every figure over the records ``query`` selects (inside one read transaction)."""
    where, params = _where(query)
    row = conn.execute("SELECT value FROM meta WHERE name = 'duplicates'").fetchone()
    out: dict[str, Any] = {
        "period": {"since": query.since, "until": query.until,
                   "department": query.department},
        "duplicates": int(row[0]) if row else 0,
    }
    for column in _BREAKDOWNS:
        rows = conn.execute(
            f"SELECT {column}, COUNT(*), SUM(hits), SUM(measures), SUM(degraded) "  # noqa: S608
            f"FROM feedback WHERE kind = 'decision'{where} GROUP BY {column}",
            params).fetchall()
        out[f"by_{column}"] = _ordered(
            [{column: r[0], "checks": int(r[1]), "hits": int(r[2] or 0),
              "measures": int(r[3] or 0), "degraded": int(r[4] or 0)} for r in rows], column)
    total = conn.execute("SELECT COUNT(*), SUM(hits), SUM(measures), SUM(degraded) FROM "  # noqa: S608
                         f"feedback WHERE kind = 'decision'{where}", params).fetchone()
    checks = int(total[0])
    out["total"] = {"checks": checks, "hits": int(total[1] or 0),
                    "measures": int(total[2] or 0), "degraded": int(total[3] or 0)}
    coded, coded_params = _where(query, "f.")
    for what, name in (("list", "list_code"), ("measure", "measure")):
        rows = conn.execute(
            "SELECT c.code, COUNT(*), SUM(f.degraded) FROM feedback_codes c JOIN feedback f "  # noqa: S608
            f"ON f.seq = c.seq WHERE c.what = ? AND f.kind = 'decision'{coded} "
            "GROUP BY c.code", [what, *coded_params]).fetchall()
        out[f"by_{what}"] = _ordered([{name: r[0], "checks": int(r[1]),
                                       "degraded": int(r[2] or 0)} for r in rows], name)
    rows = conn.execute(f"SELECT kind, COUNT(*) FROM feedback WHERE 1 = 1{where} "  # noqa: S608
                        "GROUP BY kind", params).fetchall()
    out["by_kind"] = _ordered([{"kind": r[0], "records": int(r[1])} for r in rows], "kind")
    post = conn.execute("SELECT COUNT(*), SUM(hits) FROM feedback WHERE kind = 'post_check'"  # noqa: S608
                        f"{where}", params).fetchone()
    out["degraded"] = {"checks": out["total"]["degraded"],
                       "share": _ratio(out["total"]["degraded"], checks),
                       "post_checks": int(post[0]), "post_check_hits": int(post[1] or 0)}
    out["coverage"] = _coverage(conn, personal, query)
    out["records"] = int(conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0])
    return out


def _coverage(conn: Any, personal: PersonalData, query: StatsQuery) -> dict[str, Any]:
    where, params = _where(query, "h.")
    kinds = ", ".join("?" * len(HANDLED_KINDS))
    # One row per case handled in the period: its department, its first record, and
    # whether any check (at any time) names it.
    cases = (
        "SELECT h.department AS department, MIN(h.seq) AS first_seq, "  # noqa: S608
        "CASE WHEN EXISTS (SELECT 1 FROM feedback d WHERE d.case_key = h.case_key "
        "AND d.kind = 'decision') THEN 1 ELSE 0 END AS checked FROM feedback h "
        f"WHERE h.kind IN ({kinds}) AND h.case_key IS NOT NULL{where} "
        "GROUP BY h.department, h.case_key")
    case_params = [*HANDLED_KINDS, *params]
    rows = conn.execute(f"SELECT department, COUNT(*), SUM(checked) FROM ({cases}) AS cases "  # noqa: S608
                        "GROUP BY department", case_params).fetchall()
    by_department = _ordered([
        {"department": r[0], "cases_handled": int(r[1]), "cases_checked": int(r[2] or 0),
         "ratio": _ratio(int(r[2] or 0), int(r[1]))} for r in rows], "department")
    handled = sum(r["cases_handled"] for r in by_department)
    checked = sum(r["cases_checked"] for r in by_department)
    firsts = conn.execute(f"SELECT first_seq FROM ({cases}) AS cases WHERE checked = 0 "  # noqa: S608
                          "ORDER BY first_seq LIMIT ?",
                          [*case_params, UNCHECKED_LISTED]).fetchall()
    return {"cases_handled": handled, "cases_checked": checked,
            "ratio": _ratio(checked, handled), "unchecked_total": handled - checked,
            "unchecked": [_unchecked(conn, personal, int(r[0])) for r in firsts],
            "by_department": by_department}


def _unchecked(conn: Any, personal: PersonalData, seq: int) -> dict[str, Any]:
    """What identifies a case handled without a check: read from its first record (sealed:
    the case id is kept in clear nowhere)."""
    record_id, blob = conn.execute("SELECT record_id, data FROM feedback WHERE seq = ?",
                                   (seq,)).fetchone()
    record = json.loads(personal.open(blob, f"feedback:{record_id}"))
    transaction = record.get("transaction") or {}
    case_id = transaction.get("case_id")
    return {"department": record.get("department"), "case_id": case_id,
            "decision_id": None if case_id else record.get("decision_id"),
            "scenario": transaction.get("scenario"), "kind": record.get("kind"),
            "reported_at": record.get("created_at")}
