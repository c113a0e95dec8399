"""Working days on the official Chinese schedule (法定节假日 and 调休 workdays), for
commitment due dates (DESIGN §9.8).

The schedule comes from the ``chinese-calendar`` package, which is updated each year once
the State Council publishes the next year's arrangement (late in the year before). Until
then an operator adds it as data: a JSON file naming, per year, the weekdays off and the
weekend days worked. A year known to neither counts weekends only, and a due date that
depends on such a year is marked ``provisional``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from credit_check._exceptions import ConfigurationError

MAX_WORKING_DAYS = 366


class WorkdayCalendar:
    """Which days are working days.

    Args:
        schedule_file: the operator's JSON schedule, ``{"2027": {"holidays": ["2027-01-01",
            …], "workdays": ["2027-02-07", …]}}``: ``holidays`` are weekdays off,
            ``workdays`` weekend days worked. A year named there replaces the package's.

    Raises:
        ConfigurationError: the file cannot be read or a date in it is malformed (the
            message names the file, the year and the value).
    """

    def __init__(self, schedule_file: Path | None = None) -> None:
        self._years: dict[int, tuple[frozenset[dt.date], frozenset[dt.date]]] = {}
        if schedule_file is not None:
            self._years = _load(schedule_file)

    def _official(self, day: dt.date) -> bool | None:
        """The package's answer, or None when it has no schedule for that year."""
        try:
            import chinese_calendar
        except ImportError:  # pragma: no cover - a core dependency
            return None
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return None

    def known(self, year: int) -> bool:
        """Whether the official schedule of ``year`` is known (operator data or package)."""
        return year in self._years or self._official(dt.date(year, 6, 1)) is not None

    def is_workday(self, day: dt.date) -> tuple[bool, bool]:
        """``(working day, provisional)``: provisional when the year's schedule is unknown
        and only weekends were counted."""
        own = self._years.get(day.year)
        if own is not None:
            holidays, workdays = own
            if day in workdays:
                return True, False
            return day.weekday() < 5 and day not in holidays, False
        official = self._official(day)
        if official is not None:
            return official, False
        return day.weekday() < 5, True

    def add_working_days(self, start: dt.date, days: int) -> tuple[dt.date, bool]:
        """The date ``days`` working days after ``start`` (``start`` itself not counted),
        and whether it is provisional.

        Raises:
            ValueError: ``days`` is not between 1 and MAX_WORKING_DAYS.
        """
        if not 1 <= days <= MAX_WORKING_DAYS:
            raise ValueError(f"working_days must be between 1 and {MAX_WORKING_DAYS}, "
                             f"got {days}")
        day, counted, provisional = start, 0, False
        while counted < days:
            day += dt.timedelta(days=1)
            working, guessed = self.is_workday(day)
            provisional = provisional or guessed
            counted += working
        return day, provisional


def _load(path: Path) -> dict[int, tuple[frozenset[dt.date], frozenset[dt.date]]]:
    where = f"CREDIT_CHECK_WORKDAYS_FILE {str(path)!r}"
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot be read ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigurationError(f"{where}: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f'{where}: must be an object like {{"2027": {{"holidays": '
                                 '[...], "workdays": [...]}}}')
    years = {}
    for year_text, spec in data.items():
        if not (isinstance(year_text, str) and year_text.isdigit() and len(year_text) == 4):
            raise ConfigurationError(f"{where}: {year_text!r} is not a year")
        year = int(year_text)
        if not isinstance(spec, dict) or set(spec) - {"holidays", "workdays"}:
            raise ConfigurationError(f"{where}: year {year} must hold only 'holidays' and "
                                     "'workdays' lists")
        sets = []
        for name in ("holidays", "workdays"):
            days = set()
            for text in spec.get(name, []):
                try:
                    day = dt.date.fromisoformat(text) if isinstance(text, str) else None
                except ValueError:
                    day = None
                if day is None or day.year != year:
                    raise ConfigurationError(f"{where}: {name} of {year}: {text!r} is not a "
                                             f"date of {year} (YYYY-MM-DD)")
                days.add(day)
            sets.append(frozenset(days))
        years[year] = (sets[0], sets[1])
    return years
