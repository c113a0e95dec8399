"""Reading an entries import (CSV or JSON) into store rows: every problem of the whole
import is found before anything is written, a chunk at a time, so that no step holds the
interpreter long and no more than a chunk of entries is alive at once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from pydantic import TypeAdapter, ValidationError

from credit_check._exceptions import InvalidSubjectId
from credit_check._ids import detect_kind, validate_id_number, validate_uscc
from credit_check._models import ListEntry, ListKind, to_cst_datetime
from credit_check._server._store import EntryRow, entry_row

# Small enough that validating one chunk holds the GIL for a few milliseconds only.
CHUNK = 2000
# Text is decoded in slices of about this many bytes, cut after a newline.
SLICE = 1 << 20
SHOWN_ERRORS = 50

_ENTRIES = TypeAdapter(list[ListEntry])
_FIELDS = frozenset(ListEntry.model_fields)
_NEEDED = frozenset({"entry_id", "list_code", "list_kind", "subject_id", "subject_kind",
                     "issuing_department", "effective_from"})
# CSV has no null: an empty cell of these columns means "none".
_NULLABLE = frozenset({"effective_until", "legal_representative_id", "listed_on", "name"})
_TIMES = ("listed_on", "effective_from", "effective_until")
# An import repeats a few dates many times; each is read once (up to this many kept).
_TIMES_KEPT = 4096


class ImportRefused(ValueError):
    """The import is refused as a whole; ``status`` and ``errors`` go into the answer."""

    def __init__(self, status: int, detail: str,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors


def validated_id(raw: str) -> tuple[str, str]:
    """The normalised identifier and its kind.

    Raises:
        InvalidSubjectId: the identifier is malformed.
    """
    kind = detect_kind(raw)
    code = validate_id_number(raw) if kind == "person" else validate_uscc(raw)
    return code, kind


class _Problems:
    """Problems of one kind: the first few shown, all counted."""

    def __init__(self) -> None:
        self.shown: list[dict[str, Any]] = []
        self.count = 0

    def add(self, field: str, problem: str) -> None:
        self.count += 1
        if len(self.shown) < SHOWN_ERRORS:
            self.shown.append({"field": field, "problem": problem})


class EntryReader:
    """Checks entries chunk by chunk and keeps the store rows of the valid ones.

    The problems are reported in the order of the checks over the whole import: unknown
    fields, then what ListEntry refuses, then identifiers and repeated entry ids. Once one
    kind is found the later, more expensive checks are skipped, as they would not be shown.
    """

    def __init__(self, lines: list[int] | None = None) -> None:
        # the CSV line of each entry; None for JSON, where entries are named by index
        self.lines = lines
        self.unknown = _Problems()
        self.invalid = _Problems()
        self.wrong = _Problems()
        self._first: dict[str, int] = {}
        self._times: dict[str, Any] = {}
        self.rows: list[EntryRow] = []

    def label(self, i: Any, field: str) -> str:
        """Where a problem is: the CSV line, or the index in the JSON list."""
        if self.lines is not None and isinstance(i, int) and 0 <= i < len(self.lines):
            return f"line {self.lines[i]}: {field}"
        return f"entries[{i}].{field}"

    def add(self, items: list[Any], offset: int, *, check_fields: bool = True) -> None:
        """Check ``items``, the entries from index ``offset`` on."""
        if check_fields:
            # ListEntry ignores unknown fields; an import must not (a misspelt
            # effective_until would silently make a listing permanent).
            for j, item in enumerate(items, offset):
                if isinstance(item, dict) and not _FIELDS.issuperset(item):
                    for name in item:
                        if name not in _FIELDS:
                            self.unknown.add(self.label(j, name)[:200], "unknown field")
        if self.unknown.count:
            return
        self._read_times(items)
        try:
            entries = _ENTRIES.validate_python(items)
        except ValidationError as exc:
            for e in exc.errors(include_url=False, include_input=False):
                at = e["loc"][0] + offset if isinstance(e["loc"][0], int) else e["loc"][0]
                self.invalid.add(self.label(at, ".".join(str(p) for p in e["loc"][1:])),
                                 e["msg"])
            return
        if self.invalid.count:
            return
        self._check(entries, offset)

    def _read_times(self, items: list[Any]) -> None:
        # What ListEntry's own validator would make of each time text, done once per
        # distinct text; the validator then passes the datetime through.
        times = self._times
        for item in items:
            if type(item) is dict:
                for name in _TIMES:
                    value = item.get(name)
                    if type(value) is str:
                        read = times.get(value)
                        if read is None:
                            if len(times) >= _TIMES_KEPT:
                                times.clear()
                            read = times[value] = to_cst_datetime(value)
                        item[name] = read

    def _check(self, entries: list[ListEntry], offset: int) -> None:
        wrong = self.wrong
        first = self._first
        rows = self.rows
        for i, e in enumerate(entries, offset):
            # A repeated entry_id would be counted twice in the prefix set, and its subject
            # would then stay listed after a repair.
            if first.setdefault(e.entry_id, i) != i:
                wrong.add(self.label(i, "entry_id"), "the same entry_id is given at "
                          f"{self.label(first[e.entry_id], 'entry_id')}")
            if e.list_kind is not ListKind.RED and not e.basis_document.strip():
                # A punishment shown to an applicant must name the document it rests on.
                wrong.add(self.label(i, "basis_document"), "required for an entry on a "
                          f"{e.list_kind.value} list: the document the listing rests on "
                          "(认定依据文书编号)")
            self._check_id(i, "subject_id", e.subject_id, e.subject_kind.value)
            if e.legal_representative_id is not None:
                self._check_id(i, "legal_representative_id", e.legal_representative_id, None)
            if not wrong.count:
                rows.append(entry_row(e))

    def _check_id(self, i: int, field: str, value: str, kind_given: str | None) -> None:
        try:
            code, kind = validated_id(value)
        except InvalidSubjectId as exc:
            self.wrong.add(self.label(i, field), str(exc))
            return
        if code != value:
            self.wrong.add(self.label(i, field), "must be the normalised identifier")
        elif kind_given is not None and kind != kind_given:
            self.wrong.add(self.label(i, "subject_kind"),
                           f"the subject id is a {kind}'s identifier")

    def result(self) -> list[EntryRow]:
        """The rows to store.

        Raises:
            ImportRefused: any problem in any entry; nothing is to be imported.
        """
        if self.unknown.count:
            raise ImportRefused(422, f"{self.unknown.count} unknown fields in the entries; "
                                "nothing was imported", self.unknown.shown)
        for found in (self.invalid, self.wrong):
            if found.count:
                raise ImportRefused(422, f"{found.count} problems in the entries; nothing "
                                    "was imported", found.shown)
        return self.rows


def release(items: list[Any]) -> None:
    """Empty a large list a chunk at a time: freeing a million rows at once holds the GIL
    for a noticeable pause, during which no lookup is answered."""
    while items:
        del items[-CHUNK:]


def read_json_entries(data: Any) -> list[EntryRow]:
    """The rows of a parsed ``{"entries": [...]}`` body."""
    items = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ImportRefused(422, "the body must be {\"entries\": [...]} or text/csv")
    reader = EntryReader()
    try:
        for start in range(0, len(items), CHUNK):
            reader.add(items[start : start + CHUNK], start)
    finally:
        release(items)
    return reader.result()


def _text_lines(raw: bytes) -> Iterator[str]:
    """The lines of UTF-8 text (a BOM dropped), decoded a slice at a time, with their line
    ends, as ``io.StringIO(text, newline="")`` gives them."""
    start = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    while start < len(raw):
        # A newline byte is never inside a UTF-8 sequence, nor inside a CR LF pair.
        end = raw.find(b"\n", start + SLICE)
        end = len(raw) if end < 0 else end + 1
        try:
            text = raw[start:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ImportRefused(400, f"the CSV is not UTF-8 (byte {start + exc.start})"
                                ) from None
        yield from io.StringIO(text, newline="")
        start = end


def read_csv_entries(raw: bytes) -> list[EntryRow]:
    """The rows of a CSV import whose header names the ListEntry fields."""
    reader = csv.reader(_text_lines(raw))
    try:
        header = next(reader, [])
    except csv.Error as exc:
        raise ImportRefused(422, f"the CSV header line is malformed: {exc}") from None
    missing = _NEEDED - set(header)
    if missing:
        raise ImportRefused(422, f"the CSV header lacks {', '.join(sorted(missing))}")
    width = len(header)
    nullable = [name for name in header if name in _NULLABLE]
    check_fields = not _FIELDS.issuperset(header)
    lines: list[int] = []
    entries = EntryReader(lines)
    malformed = _Problems()
    chunk: list[dict[str, Any]] = []
    try:
        for row in reader:
            if not row:
                continue  # a blank line
            if len(row) != width:
                malformed.add(f"line {reader.line_num}", "wrong number of columns")
                continue
            lines.append(reader.line_num)
            if malformed.count:
                continue  # only the malformed rows will be reported
            item: dict[str, Any] = dict(zip(header, row, strict=True))
            for name in nullable:
                if item[name] == "":
                    item[name] = None
            chunk.append(item)
            if len(chunk) == CHUNK:
                entries.add(chunk, len(lines) - CHUNK, check_fields=check_fields)
                chunk = []
    except csv.Error as exc:
        raise ImportRefused(422, f"the CSV is malformed at line {reader.line_num}: {exc}"
                            ) from None
    if malformed.count:
        raise ImportRefused(422, f"{malformed.count} CSV rows are malformed; nothing was "
                            "imported", malformed.shown)
    if chunk:
        entries.add(chunk, len(lines) - len(chunk), check_fields=check_fields)
    return entries.result()
