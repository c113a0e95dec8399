"""Working days on the official Chinese schedule, and the operator's schedule for a year
the package does not know yet (DESIGN §9.8)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from credit_check._exceptions import ConfigurationError
from credit_check._lifecycle._workdays import WorkdayCalendar

D = dt.date


def test_five_working_days_across_national_day_2025() -> None:
    # 2025: 1–8 October off, Sunday 28 September and Saturday 11 October worked (调休).
    due, provisional = WorkdayCalendar().add_working_days(D(2025, 9, 30), 5)
    assert (due, provisional) == (D(2025, 10, 14), False)  # 9, 10, 11 (Sat), 13, 14


def test_a_swapped_weekend_day_counts_and_a_holiday_weekday_does_not() -> None:
    cal = WorkdayCalendar()
    assert cal.is_workday(D(2025, 9, 28)) == (True, False)    # a Sunday, worked
    assert cal.is_workday(D(2025, 10, 3)) == (False, False)   # a Friday, off
    assert cal.add_working_days(D(2025, 9, 26), 1) == (D(2025, 9, 28), False)


def test_a_year_without_a_known_schedule_counts_weekends_only_and_is_provisional(
        tmp_path: Path) -> None:
    cal = WorkdayCalendar()
    assert not cal.known(2031)
    # 2031-09-30 is a Tuesday: 1 (Wed), 2, 3, 6, 7 October, weekends skipped, no holiday.
    assert cal.add_working_days(D(2031, 9, 30), 5) == (D(2031, 10, 7), True)
    # A due date inside a known year is not provisional even if counted from the last days.
    assert cal.add_working_days(D(2025, 12, 1), 3)[1] is False


def test_the_operator_adds_next_years_schedule_as_data(tmp_path: Path) -> None:
    schedule = tmp_path / "workdays.json"
    schedule.write_text(json.dumps({"2031": {
        "holidays": [f"2031-10-0{d}" for d in range(1, 8)] + ["2031-10-08"],
        "workdays": ["2031-09-28", "2031-10-11"]}}))
    cal = WorkdayCalendar(schedule)
    assert cal.known(2031)
    assert cal.add_working_days(D(2031, 9, 30), 5) == (D(2031, 10, 14), False)
    assert cal.is_workday(D(2031, 9, 28)) == (True, False)


@pytest.mark.parametrize(("content", "named"), [
    ("[]", "must be an object"),
    ('{"31": {}}', "'31' is not a year"),
    ('{"2031": {"holidays": ["2031-13-01"]}}', "'2031-13-01' is not a date of 2031"),
    ('{"2031": {"holidays": ["2030-10-01"]}}', "'2030-10-01' is not a date of 2031"),
    ('{"2031": {"days_off": []}}', "only 'holidays' and 'workdays'"),
    ("{", "not JSON"),
])
def test_a_malformed_schedule_is_a_clear_configuration_error(
        tmp_path: Path, content: str, named: str) -> None:
    schedule = tmp_path / "workdays.json"
    schedule.write_text(content)
    with pytest.raises(ConfigurationError, match="CREDIT_CHECK_WORKDAYS_FILE") as err:
        WorkdayCalendar(schedule)
    assert named in str(err.value)


def test_working_days_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="between 1 and 366"):
        WorkdayCalendar().add_working_days(D(2025, 1, 1), 0)
