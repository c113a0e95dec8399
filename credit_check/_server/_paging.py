"""Query parameters of the admin read calls: the page size and cursor of
``GET /v1/admin/feedback``, and the period and department of ``GET /v1/admin/stats``.
Each bad value is a 400 that names the parameter and says what it takes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping

from credit_check._server._http import Problem
from credit_check._server._store import StatsQuery

# ~700 bytes a record: a default page is under 1 MB, the largest one under 8 MB.
DEFAULT_PAGE = 1000
MAX_PAGE = 10_000
_DIGITS = re.compile(r"[0-9]{1,18}")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def page_limit(text: str | None) -> int:
    """The ``limit`` parameter: records per page, 1 to MAX_PAGE (default DEFAULT_PAGE)."""
    if text is None:
        return DEFAULT_PAGE
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= MAX_PAGE:
        raise Problem(400, f"limit must be a whole number from 1 to {MAX_PAGE} (records per "
                           f"page; default {DEFAULT_PAGE}), got {text[:40]!r}")
    return int(text)


def read_cursor(text: str | None) -> int:
    """The ``cursor`` parameter: a ``next_cursor`` of an earlier page (none: the start)."""
    if text is None:
        return 0
    if not _DIGITS.fullmatch(text):
        raise Problem(400, "cursor must be the next_cursor of an earlier page, as it was "
                           f"given; got {text[:40]!r}")
    return int(text)


def _month(text: str) -> tuple[str, str]:
    match = _MONTH.fullmatch(text)
    try:
        if match is None:
            raise ValueError
        year, month = int(match[1]), int(match[2])
        first = dt.date(year, month, 1)
        following = dt.date(year + month // 12, month % 12 + 1, 1)
    except ValueError:  # no such month, or the calendar's last one
        raise Problem(400, f"month must be YYYY-MM, e.g. 2026-11; got {text[:40]!r}") from None
    return first.isoformat(), following.isoformat()


def _day(name: str, text: str) -> str:
    try:
        if not _DAY.fullmatch(text):
            raise ValueError
        return dt.date.fromisoformat(text).isoformat()
    except ValueError:
        raise Problem(400, f"{name} must be a date YYYY-MM-DD (a China Standard Time day), "
                           f"got {text[:40]!r}") from None


def stats_query(params: Mapping[str, str]) -> StatsQuery:
    """The stats' period (``month``, or ``since`` and/or ``until``) and ``department``."""
    month, since, until = params.get("month"), params.get("since"), params.get("until")
    if month is not None:
        if since is not None or until is not None:
            raise Problem(400, "give either month or since/until, not both")
        since, until = _month(month)
    else:
        since = _day("since", since) if since is not None else None
        until = _day("until", until) if until is not None else None
        if since is not None and until is not None and since > until:
            raise Problem(400, f"since ({since}) is after until ({until}); until is the "
                               "first day not counted")
    department = params.get("department")
    if department is not None and not 1 <= len(department) <= 256:
        raise Problem(400, "department must be 1 to 256 characters (a department's name as "
                           "in its records)")
    return StatsQuery(since, until, department)
