"""Reading an entries import chunk by chunk (credit_check/_server/_import.py): problems are
found, numbered and counted across chunk and decode-slice boundaries exactly as over one
piece, and the stored rows equal those made from the validated entries."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from _sandbox_app_support import entry, org_id

from credit_check._models import ListEntry
from credit_check._server import _import
from credit_check._server._import import (
    ImportRefused,
    read_csv_entries,
    read_json_entries,
    release,
)
from credit_check._server._store import entry_row

COLUMNS = ["entry_id", "list_code", "list_kind", "subject_id", "subject_kind", "name",
           "issuing_department", "basis_document", "effective_from", "effective_until",
           "status", "legal_representative_id"]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 3 entries and decode slices of 40 bytes, so that tests cross both."""
    monkeypatch.setattr(_import, "CHUNK", 3)
    monkeypatch.setattr(_import, "SLICE", 40)


def csv_text(entries: list[dict[str, Any]], newline: str = "\n") -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator=newline, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(entries)
    return out.getvalue()


def entries(n: int, start: int = 0) -> list[dict[str, Any]]:
    return [entry(f"e-{i}", org_id(1000 + i), name=f"名称，“引号”\n第二行 {i}",
                  effective_until="2030-01-01T12:00:00+08:00" if i % 2 else None)
            for i in range(start, start + n)]


def refused(excinfo: pytest.ExceptionInfo[ImportRefused]) -> list[str]:
    return [f"{e['field']}: {e['problem']}" for e in excinfo.value.errors or []]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_csv_rows_equal_the_rows_of_the_validated_entries(newline: str) -> None:
    given = entries(10)
    rows = read_csv_entries(("\ufeff" + csv_text(given, newline)).encode())
    expected = [entry_row(ListEntry.model_validate(e)) for e in given]
    assert rows == expected
    assert json.loads(rows[1][6])["effective_until"] == "2030-01-01T12:00:00+08:00"
    assert json.loads(rows[0][6])["name"].endswith("第二行 0")


def test_json_rows_equal_the_rows_of_the_validated_entries() -> None:
    given = entries(7)
    expected = [entry_row(ListEntry.model_validate(e)) for e in given]
    assert read_json_entries({"entries": [dict(e) for e in given]}) == expected


def test_problems_in_later_chunks_name_their_line_and_index() -> None:
    bad = entries(8)
    bad[7]["effective_from"] = "not-a-date"
    bad[5]["status"] = "gone"
    with pytest.raises(ImportRefused) as excinfo:
        read_json_entries({"entries": [dict(e) for e in bad]})
    assert excinfo.value.detail.startswith("2 problems")
    assert [e.split(":")[0] for e in refused(excinfo)] == ["entries[5].status",
                                                           "entries[7].effective_from"]
    text = csv_text(bad)
    with pytest.raises(ImportRefused) as excinfo:
        read_csv_entries(text.encode())
    # every entry spans two lines (its name has a newline): entry i ends on line 3 + 2 i
    fields = [e.split(": ")[0] + ": " + e.split(": ")[1] for e in refused(excinfo)]
    assert fields == ["line 13: status", "line 17: effective_from"]


def test_a_repeated_entry_id_in_another_chunk_is_refused() -> None:
    given = entries(7)
    given[6]["entry_id"] = "e-1"
    with pytest.raises(ImportRefused) as excinfo:
        read_json_entries({"entries": given})
    assert refused(excinfo) == ["entries[6].entry_id: the same entry_id is given at "
                                "entries[1].entry_id"]


def test_validation_problems_come_before_identifier_problems_found_earlier() -> None:
    given = entries(8)
    valid = org_id(5)
    given[1]["subject_id"] = valid[:-1] + ("1" if valid.endswith("0") else "0")
    given[7]["list_kind"] = "grey"
    with pytest.raises(ImportRefused) as excinfo:
        read_json_entries({"entries": [dict(e) for e in given]})
    assert [e.split(":")[0] for e in refused(excinfo)] == ["entries[7].list_kind"]
    given[7]["list_kind"] = "black"
    with pytest.raises(ImportRefused) as excinfo:
        read_json_entries({"entries": [dict(e) for e in given]})
    assert [e.split(":")[0] for e in refused(excinfo)] == ["entries[1].subject_id"]


def test_unknown_fields_are_counted_over_every_chunk() -> None:
    given = [{**e, "efective_until": "2026-01-01"} for e in entries(7)]
    given[2]["status"] = "gone"
    with pytest.raises(ImportRefused) as excinfo:
        read_json_entries({"entries": given})
    assert excinfo.value.detail.startswith("7 unknown fields")
    text = csv_text(entries(7)).replace("effective_until", "efective_until", 1)
    with pytest.raises(ImportRefused) as excinfo:
        read_csv_entries(text.encode())
    assert excinfo.value.detail.startswith("7 unknown fields")
    assert refused(excinfo)[0] == "line 3: efective_until: unknown field"


def test_shown_problems_are_bounded_and_all_counted() -> None:
    given = [{**e, "status": "gone"} for e in entries(60)]
    with pytest.raises(ImportRefused) as excinfo:
        read_json_entries({"entries": given})
    assert excinfo.value.detail.startswith("60 problems")
    assert len(excinfo.value.errors or []) == 50


def test_malformed_rows_are_reported_before_anything_else() -> None:
    lines = csv_text(entries(6)).splitlines(keepends=True)
    text = "".join(lines[:5]) + "only,two\n" + "".join(lines[5:]) + "a,b,c\n"
    text = text.replace(",active,", ",gone,")
    with pytest.raises(ImportRefused) as excinfo:
        read_csv_entries(text.encode())
    assert excinfo.value.detail.startswith("2 CSV rows are malformed")
    assert [e["field"] for e in excinfo.value.errors or []] == ["line 6", "line 15"]


def test_invalid_utf8_in_a_later_slice_names_its_byte() -> None:
    raw = csv_text(entries(4)).encode()
    at = len(raw) - 30
    with pytest.raises(ImportRefused) as excinfo:
        read_csv_entries(raw[:at] + b"\xff" + raw[at:])
    assert excinfo.value.status == 400
    assert excinfo.value.detail == f"the CSV is not UTF-8 (byte {at})"


def test_blank_lines_are_skipped_and_keep_the_numbering() -> None:
    lines = csv_text(entries(4)).splitlines(keepends=True)
    text = "".join(lines[:3]) + "\n\n" + "".join(lines[3:])
    text = text.replace("e-3,", "e-1,")
    with pytest.raises(ImportRefused) as excinfo:
        read_csv_entries(text.encode())
    assert refused(excinfo) == ["line 11: entry_id: the same entry_id is given at "
                                "line 7: entry_id"]


def test_release_empties_the_list() -> None:
    items = list(range(10))
    release(items)
    assert items == []


def test_black_and_watch_entries_without_basis_document_are_refused_naming_each_line() -> None:
    given = entries(5)
    given[1]["basis_document"] = ""
    given[3] = {**given[3], "list_code": "market.abnormal_operation", "list_kind": "watch",
                "basis_document": "  "}
    red = {**given[4], "list_code": "tax.a_grade", "list_kind": "red", "basis_document": ""}
    with pytest.raises(ImportRefused) as excinfo:
        read_csv_entries(csv_text([*given[:4], red]).encode())
    problems = refused(excinfo)
    # Each entry takes two lines (its name holds a line break): entries 2 and 4 end on 5, 9.
    assert [p.split(": ")[0] for p in problems] == ["line 5", "line 9"]
    assert all("basis_document: required for an entry on a" in p for p in problems)
    assert "black list" in problems[0] and "watch list" in problems[1]
    with pytest.raises(ImportRefused) as excinfo:
        read_json_entries({"entries": [dict(e) for e in given[:2]]})
    assert refused(excinfo)[0].startswith("entries[1].basis_document: required")
    # A red list's entry needs none.
    assert len(read_json_entries({"entries": [dict(red)]})) == 1
