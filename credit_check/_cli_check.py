"""``credit-check check`` and ``credit-check check-file``: one-off and batch checks.

Exit codes (DESIGN §5): 0 ALLOW / GREEN_CHANNEL, 3 RESTRICT, 4 REVIEW, 5 DENY, 2 bad input.
A batch exits with the code of its most severe outcome.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import ValidationError

from credit_check._exceptions import ConfigurationError, CreditCheckError, InvalidSubjectId
from credit_check._ids import mask_id
from credit_check._models import Decision, Outcome, Subject, Transaction

if TYPE_CHECKING:
    from credit_check._checker import Checker

EXIT_CODES = {
    Outcome.GREEN_CHANNEL: 0,
    Outcome.ALLOW: 0,
    Outcome.RESTRICT: 3,
    Outcome.REVIEW: 4,
    Outcome.DENY: 5,
}
EXIT_BAD_INPUT = 2
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_FIELD_CHARS = 4096
MAX_ROWS = 1_000_000
CHUNK = 500
REPORT_COLUMNS = [
    "row", "id", "name", "outcome", "measures", "legal_basis", "lists", "degraded",
    "decision_id", "catalog_version", "data_version", "decided_at", "error",
]


def _fail(message: str) -> int:
    print(f"credit-check: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _open_checker() -> Checker:
    from credit_check._checker import Checker

    # A fresh process has no catalogue yet: check() waits for the first one up to
    # CREDIT_CHECK_READY_TIMEOUT (less when the service is known to be down).
    return Checker.from_env()


def _transaction(args: argparse.Namespace) -> Transaction:
    """The command's transaction; a bad ``--case-id`` raises ValueError with a clear message."""
    try:
        return Transaction(scenario=args.scenario, case_id=args.case_id)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "--" + str(error["loc"][0]).replace("_", "-") if error["loc"] else "arguments"
        raise ValueError(f"{name}: {error['msg']}") from None


def print_decision(d: Decision, out: TextIO) -> None:
    """A human-readable Decision, natural persons' ids masked."""
    subject = d.subject
    label = f"{subject.masked_id}" + (f" {subject.name}" if subject.name else "")
    # Degraded: the service could not answer, or withheld what the scenario needs; the
    # reasons say which.
    flag = "  [DEGRADED: see the reasons]" if d.degraded else ""
    print(f"{d.outcome.value.upper():<14} {label}{flag}", file=out)
    print(f"  decision {d.decision_id}  catalogue {d.catalog_version or '-'}  "
          f"data {d.data_version or '-'}  at {d.decided_at.isoformat()}", file=out)
    for e in d.matches:
        print(f"  entry    {e.list_code} [{e.status.value}] {e.issuing_department} "
              f"{e.basis_document}", file=out)
    for m in d.measures:
        print(f"  measure  {m.code} {m.name} ({m.effect.value}, {m.target.value}) "
              f"— {m.legal_basis}; {m.implementing_department}", file=out)
    for reason in d.reasons:
        print(f"  · {reason}", file=out)
    if d.remedy:
        print(f"  remedy   {d.remedy}", file=out)


def check(args: argparse.Namespace) -> int:
    """Run ``credit-check check ID --scenario S``."""
    try:
        subject = Subject.parse(args.id)
    except InvalidSubjectId as exc:
        return _fail(str(exc))
    try:
        transaction = _transaction(args)
    except ValueError as exc:
        return _fail(str(exc))
    try:
        with _open_checker() as checker:
            decision = checker.check(subject, transaction)
    except ConfigurationError as exc:
        return _fail(str(exc))
    except CreditCheckError as exc:
        print(f"credit-check: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(decision.public_dict(), sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        print_decision(decision, sys.stdout)
    return EXIT_CODES[decision.outcome]


@dataclass
class _Row:
    number: int
    raw: str
    subject: Subject | None
    error: str | None


def read_rows(path: Path, column: str) -> Iterator[_Row]:
    """The identifier column of a CSV file, each row validated; bad rows carry an error.

    Raises:
        ValueError: the file is too large, not text, or has no such column.
    """
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: {size} bytes is over the {MAX_FILE_BYTES} byte limit; split it")
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ValueError(f"{path}: not a text file (neither UTF-8 nor GB18030); "
                         "save it as CSV UTF-8")
    if "\x00" in text:
        raise ValueError(f"{path}: contains NUL bytes; is it a spreadsheet rather than CSV?")
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.DictReader(text.splitlines())
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise ValueError(f"{path}: the header row is not valid CSV ({exc})") from None
    if not header or column not in header:
        raise ValueError(
            f"{path}: no column {column!r} in the header {header or []}; "
            "name the identifier column with --column"
        )
    name_col = "name" if "name" in header else None
    try:
        for number, record in enumerate(reader, start=2):
            if number - 1 > MAX_ROWS:
                raise ValueError(f"{path}: more than {MAX_ROWS} rows; split the file")
            value = (record.get(column) or "").strip()
            name = (record.get(name_col) or None) if name_col else None
            try:
                yield _Row(number, value, Subject.parse(value, name), None)
            except InvalidSubjectId as exc:
                yield _Row(number, value, None, str(exc))
    except csv.Error as exc:
        # reader.line_num only counts rows read whole; the csv reader's own count includes
        # the line that failed.
        raise ValueError(f"{path}: line {reader.reader.line_num}: {exc}") from None


def _progress(done: int, total: int, started: float, out: TextIO) -> None:
    width = 30
    filled = width * done // max(total, 1)
    rate = done / max(time.monotonic() - started, 1e-6)
    out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}  {rate:,.0f}/s")
    out.flush()


def _report_row(row: _Row, d: Decision | None) -> dict[str, Any]:
    if d is None:
        # Not a valid USCC, so possibly a mistyped id number: never echoed in clear.
        return {"row": row.number, "id": mask_id(row.raw), "outcome": "invalid",
                "error": row.error}
    return {
        "row": row.number,
        "id": d.subject.masked_id,
        "name": d.subject.name or "",
        "outcome": d.outcome.value,
        "measures": "; ".join(f"{m.code} {m.name}" for m in d.measures),
        "legal_basis": "; ".join(sorted({m.legal_basis for m in d.measures})),
        "lists": "; ".join(f"{e.list_code}[{e.status.value}]" for e in d.matches),
        "degraded": "yes" if d.degraded else "no",
        "decision_id": d.decision_id,
        "catalog_version": d.catalog_version or "",
        "data_version": d.data_version or "",
        "decided_at": d.decided_at.isoformat(),
        "error": "",
    }


def _decide_rows(valid: list[_Row], transaction: Transaction, show: bool,
                 started: float) -> list[tuple[_Row, Decision | None]]:
    out: list[tuple[_Row, Decision | None]] = []
    with _open_checker() as checker:
        for i in range(0, len(valid), CHUNK):
            chunk = valid[i : i + CHUNK]
            group: Sequence[Decision] = checker.check_many(
                [r.subject for r in chunk if r.subject is not None], transaction
            )
            out.extend(zip(chunk, group, strict=True))
            if show:
                _progress(min(i + CHUNK, len(valid)), len(valid), started, sys.stderr)
    return out


def check_file(args: argparse.Namespace) -> int:
    """Run ``credit-check check-file FILE.csv --scenario S [--out report.csv]``."""
    path = Path(args.file)
    if not path.is_file():
        return _fail(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
    try:
        rows = list(read_rows(path, args.column))
        transaction = _transaction(args)
    except (ValueError, OSError) as exc:
        return _fail(str(exc))
    if not rows:
        return _fail(f"{path}: a header but no rows to check")
    out_dir = Path(args.out).parent if args.out else None
    if out_dir is not None and not out_dir.is_dir():
        # Found now rather than after the whole batch has been checked.
        return _fail(f"cannot write the report {args.out}: no directory {out_dir}")
    show = sys.stderr.isatty() and not args.json
    results: list[tuple[_Row, Decision | None]] = [(r, None) for r in rows if r.subject is None]
    valid = [r for r in rows if r.subject is not None]
    started = time.monotonic()
    if not valid:
        # Nothing to ask the service: say so without opening a checker (no network call).
        first = rows[0]
        print(f"credit-check: error: {path}: no valid identifier in column {args.column!r} "
              f"({len(rows)} rows; row {first.number}: {first.error})", file=sys.stderr)
    try:
        if valid:
            results.extend(_decide_rows(valid, transaction, show, started))
    except ConfigurationError as exc:
        return _fail(str(exc))
    except CreditCheckError as exc:
        print(f"\ncredit-check: {exc}", file=sys.stderr)
        return 1
    if show:
        sys.stderr.write("\n")
    results.sort(key=lambda pair: pair[0].number)
    report = [_report_row(r, d) for r, d in results]
    counts: dict[str, int] = {}
    for line in report:
        counts[line["outcome"]] = counts.get(line["outcome"], 0) + 1
    if args.out:
        try:
            with open(args.out, "w", newline="", encoding="utf-8-sig") as fh:
                writer = csv.DictWriter(fh, fieldnames=REPORT_COLUMNS, restval="")
                writer.writeheader()
                writer.writerows(report)
        except OSError as exc:
            return _fail(f"cannot write the report {args.out}: {exc.strerror}")
    decided = [d for _, d in results if d is not None]
    worst = Outcome.most_severe(d.outcome for d in decided)
    summary = {"rows": len(rows), "counts": counts, "outcome": worst.value,
               "degraded": sum(d.degraded for d in decided), "report": args.out}
    if args.json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        print(f"checked {len(rows)} rows in {time.monotonic() - started:.1f} s: {parts}")
        if summary["degraded"]:
            print(f"{summary['degraded']} decided degraded (service unreachable, stale data or "
                  "entries withheld from this key)")
        if args.out:
            print(f"report written to {args.out}")
    return EXIT_CODES[worst] if decided else (EXIT_BAD_INPUT if rows else 0)
