"""The monthly report's pure parts: which month by default, when it is due, and the masking
of id numbers that a case id may embed."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from credit_check._monthly._gather import due_date, mask_ids, parse_month
from credit_check._server._demo import make_id_number


def test_the_default_month_is_the_last_one_and_is_due_before_the_15th() -> None:
    assert parse_month(None, today=dt.date(2027, 1, 3)) == "2026-12"
    assert parse_month(None, today=dt.date(2026, 12, 31)) == "2026-11"
    assert parse_month(" 2026-11 ") == "2026-11"
    assert due_date("2026-11") == dt.date(2026, 12, 15)
    assert due_date("2026-12") == dt.date(2027, 1, 15)


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "26-11", "2026/11", "1999-12", ""])
def test_a_bad_month_says_what_to_give(text: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_month(text)


def test_only_valid_id_numbers_inside_a_case_id_are_masked() -> None:
    person = make_id_number(random.Random(3))
    assert mask_ids(f"SQ-{person}-2") == f"SQ-{person[:6]}********{person[-4:]}-2"
    not_an_id = person[:-1] + ("0" if person[-1] != "0" else "1")
    assert mask_ids(f"SQ-{not_an_id}") == f"SQ-{not_an_id}"
    assert mask_ids("CG-2026-001") == "CG-2026-001" and mask_ids(None) == ""
