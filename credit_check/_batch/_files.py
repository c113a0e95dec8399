"""The files of a batch: the identifier column of a CSV file or an Excel workbook read
into rows (each validated; a bad row carries its error, masked), and the report written
as CSV or ``.xlsx``.

Raises ValueError with a message that names the file and what to do whenever a file
cannot be used at all.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credit_check._exceptions import InvalidSubjectId
from credit_check._ids import mask_id, mask_ids_in
from credit_check._models import Subject

MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_FIELD_CHARS = 4096
MAX_ROWS = 1_000_000
NAME_COLUMNS = ("name", "名称", "姓名", "单位名称")
ZIP_MAGIC = b"PK\x03\x04"
OLD_EXCEL_MAGIC = b"\xd0\xcf\x11\xe0"


@dataclass
class Row:
    """One row of the input: its line (or sheet row) number, the identifier as given,
    and the Subject or why there is none."""

    number: int
    raw: str
    subject: Subject | None
    error: str | None


def _row(number: int, value: str, name: str | None) -> Row:
    try:
        return Row(number, value, Subject.parse(value, name or None), None)
    except InvalidSubjectId as exc:
        # An invalid identifier may be a person's id number with one wrong character.
        return Row(number, value, None, mask_ids_in(str(exc)))


def read_rows(path: Path, column: str, sheet: str | None = None) -> list[Row]:
    """The rows of a CSV file or an ``.xlsx`` workbook (told apart by their content).

    Raises:
        ValueError: the file is too large, of another kind, or has no such column.
    """
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: {size} bytes is over the {MAX_FILE_BYTES} byte limit; split it")
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(OLD_EXCEL_MAGIC):
        raise ValueError(f"{path}: an old Excel (.xls) file; save it as .xlsx or CSV UTF-8")
    if head.startswith(ZIP_MAGIC):
        return list(_xlsx_rows(path, column, sheet))
    if sheet is not None:
        raise ValueError(f"{path}: --sheet is for Excel files; this is CSV")
    return list(_csv_rows(path, column))


def _header(path: Path, header: list[str] | None, column: str) -> str | None:
    if not header or column not in header:
        raise ValueError(f"{path}: no column {column!r} in the header {header or []}; "
                         "name the identifier column with --column")
    return next((c for c in NAME_COLUMNS if c in header), None)


def _csv_rows(path: Path, column: str) -> Iterator[Row]:
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ValueError(f"{path}: not a text file (neither UTF-8 nor GB18030); "
                         "save it as CSV UTF-8 or .xlsx")
    if "\x00" in text:
        raise ValueError(f"{path}: contains NUL bytes; is it a spreadsheet rather than CSV?")
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.DictReader(text.splitlines())
    try:
        header = list(reader.fieldnames or [])
    except csv.Error as exc:
        raise ValueError(f"{path}: the header row is not valid CSV ({exc})") from None
    name_col = _header(path, header, column)
    try:
        for number, record in enumerate(reader, start=2):
            if number - 1 > MAX_ROWS:
                raise ValueError(f"{path}: more than {MAX_ROWS} rows; split the file")
            value = (record.get(column) or "").strip()
            yield _row(number, value, (record.get(name_col) or None) if name_col else None)
    except csv.Error as exc:
        # reader.line_num only counts rows read whole; the csv reader's own count includes
        # the line that failed.
        raise ValueError(f"{path}: line {reader.reader.line_num}: {exc}") from None


def _load_workbook(path: Path) -> Any:
    try:
        import openpyxl
    except ImportError:
        raise ValueError(f"{path}: an Excel file needs openpyxl: pip install "
                         "'credit-check[xlsx]' (or save it as CSV UTF-8)") from None
    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise ValueError(f"{path}: not a readable .xlsx workbook ({type(exc).__name__}); "
                         "open and save it again in Excel, or save it as CSV UTF-8") from None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _xlsx_rows(path: Path, column: str, sheet: str | None) -> Iterator[Row]:
    book = _load_workbook(path)
    try:
        if sheet is not None and sheet not in book.sheetnames:
            raise ValueError(f"{path}: no sheet {sheet!r}; the sheets are {book.sheetnames}")
        ws = book[sheet] if sheet is not None else book.worksheets[0]
        cells = ws.iter_rows(values_only=True)
        header = [_text(v) for v in next(cells, ())]
        name_col = _header(path, header, column)
        at = header.index(column)
        name_at = header.index(name_col) if name_col else None
        for number, values in enumerate(cells, start=2):
            if number - 1 > MAX_ROWS:
                raise ValueError(f"{path}: more than {MAX_ROWS} rows; split the file")
            if not any(v is not None and _text(v) for v in values):
                continue  # Excel keeps formatted but empty rows
            value = values[at] if at < len(values) else None
            name = _text(values[name_at]) if name_at is not None and name_at < len(values) \
                else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                # Excel keeps 15 significant digits of a number: an 18-digit id typed as a
                # number has lost its last digits, so it is never guessed back.
                yield Row(number, mask_id(_text(value)), None,
                          f"column {column!r} holds a number, not text: Excel keeps only 15 "
                          "digits of a number, so the identifier may be damaged; format the "
                          "column as text and enter it again")
                continue
            yield _row(number, _text(value)[:MAX_FIELD_CHARS], name)
    finally:
        book.close()


def write_report(path: Path, columns: list[str], rows: Iterable[dict[str, Any]]) -> None:
    """The report as ``.xlsx`` (by its suffix) or CSV (UTF-8 with a BOM, for Excel).

    Raises:
        OSError: it cannot be written.
        ValueError: ``.xlsx`` without openpyxl.
    """
    if path.suffix.lower() == ".xlsx":
        try:
            import openpyxl
        except ImportError:
            raise ValueError("an .xlsx report needs openpyxl: pip install "
                             "'credit-check[xlsx]' (or write --out report.csv)") from None
        book = openpyxl.Workbook(write_only=True)
        ws = book.create_sheet("核查结果 report")
        ws.append(columns)
        for row in rows:
            ws.append([row.get(c, "") for c in columns])
        book.save(path)
        return
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
