"""``credit-check check-file FILE --scenario S [--out REPORT.csv|.xlsx]``.

Every row ends up in the report: decided, or with why it could not be checked (masked).
Exit code: 2 when any row could not be checked — an
incomplete batch must be noticed — else the code of the most severe outcome.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from credit_check import _cli_check
from credit_check._batch._files import Row, read_rows, write_report
from credit_check._batch._progress import Progress
from credit_check._exceptions import ConfigurationError, CreditCheckError, OutboxError
from credit_check._ids import mask_id, mask_ids_in
from credit_check._models import Decision, Outcome, Transaction

CHUNK = 500
REPORT_COLUMNS = [
    "row", "id", "name", "outcome", "measures", "legal_basis", "lists", "degraded",
    "decision_id", "scenario", "case_id", "catalog_version", "data_version", "decided_at",
    "error",
]
NOT_CHECKED = "not_checked"
INVALID = "invalid"


def _report_row(row: Row, d: Decision | None, error: str | None,
                transaction: Transaction) -> dict[str, Any]:
    base = {"row": row.number, "scenario": transaction.scenario.value,
            "case_id": transaction.case_id or "", "error": error or ""}
    if d is None:
        return base | {"id": mask_id(row.raw) if row.raw else "",
                       "outcome": INVALID if row.subject is None else NOT_CHECKED}
    return base | {
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
    }


def _decide(valid: list[Row], transaction: Transaction, progress: Progress
            ) -> list[tuple[Row, Decision | None, str | None]]:
    """Each valid row with its decision, or with why it has none (the batch goes on)."""
    out: list[tuple[Row, Decision | None, str | None]] = []
    with _cli_check._open_checker() as checker:
        for i in range(0, len(valid), CHUNK):
            chunk = valid[i : i + CHUNK]
            try:
                group = list(checker.check_many([r.subject for r in chunk if r.subject],
                                                transaction))
                out += [(r, d, None) for r, d in zip(chunk, group, strict=True)]
            except OutboxError as exc:
                # Decided (and enforced), but the records may not all be written.
                group = list(exc.decision or [])
                error = mask_ids_in(f"decided, but its feedback record may not be written: "
                                    f"{exc}")
                if len(group) == len(chunk):
                    out += [(r, d, error) for r, d in zip(chunk, group, strict=True)]
                else:
                    out += [(r, None, mask_ids_in(f"not checked: {exc}")) for r in chunk]
            except ConfigurationError:
                raise
            except CreditCheckError as exc:
                out += [(r, None, mask_ids_in(f"not checked: {exc}")) for r in chunk]
            progress.advance(len(chunk))
    return out


def check_file(args: argparse.Namespace) -> int:
    """Run ``credit-check check-file``."""
    fail = _cli_check._fail
    path = Path(args.file)
    if not path.is_file():
        return fail(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
    try:
        rows = read_rows(path, args.column, args.sheet)
        transaction = _cli_check._transaction(args)
    except (ValueError, OSError) as exc:
        return fail(str(exc))
    if not rows:
        return fail(f"{path}: a header but no rows to check")
    out = Path(args.out) if args.out else None
    if out is not None and not out.parent.is_dir():
        # Found now rather than after the whole batch has been checked.
        return fail(f"cannot write the report {out}: no directory {out.parent}")
    started = time.monotonic()
    valid = [r for r in rows if r.subject is not None]
    results: list[tuple[Row, Decision | None, str | None]] = [
        (r, None, r.error) for r in rows if r.subject is None]
    if not valid:
        # Nothing to ask the service: say so without opening a checker (no network call).
        first = rows[0]
        print(f"credit-check: error: {path}: no valid identifier in column {args.column!r} "
              f"({len(rows)} rows; row {first.number}: {first.error})", file=sys.stderr)
    show = not args.quiet and not args.json and sys.stderr.isatty()
    try:
        with Progress(len(valid), show) as progress:
            if valid:
                results += _decide(valid, transaction, progress)
    except ConfigurationError as exc:
        return fail(str(exc))
    results.sort(key=lambda item: item[0].number)
    report = [_report_row(r, d, e, transaction) for r, d, e in results]
    if out is not None:
        try:
            write_report(out, REPORT_COLUMNS, report)
        except ValueError as exc:
            return fail(str(exc))
        except OSError as exc:
            return fail(f"cannot write the report {out}: {exc.strerror or exc}")
    decided = [d for _, d, _ in results if d is not None]
    failed = sum(1 for _, _, e in results if e)
    worst = Outcome.most_severe(d.outcome for d in decided)
    code = _cli_check.EXIT_BAD_INPUT if failed or not decided else _cli_check.EXIT_CODES[worst]
    _summary(args, path, rows, report, decided, failed, worst, code, out,
             time.monotonic() - started)
    return code


def _summary(args: argparse.Namespace, path: Path, rows: list[Row],
             report: list[dict[str, Any]], decided: list[Decision], failed: int,
             worst: Outcome, code: int, out: Path | None, seconds: float) -> None:
    counts = Counter(line["outcome"] for line in report)
    degraded = sum(d.degraded for d in decided)
    summary = {"file": str(path), "rows": len(rows), "checked": len(decided),
               "not_checked": failed, "counts": dict(sorted(counts.items())),
               "outcome": worst.value if decided else None, "degraded": degraded,
               "scenario": args.scenario, "case_id": args.case_id,
               "report": str(out) if out else None, "exit_code": code}
    if args.json:
        json.dump(summary, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return
    parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    case = f" (case {args.case_id})" if args.case_id else ""
    print(f"{path.name}{case}, {args.scenario}: {len(rows)} rows in {seconds:.1f} s — {parts}")
    if decided:
        print(f"most severe outcome: {worst.value}")
    if degraded:
        print(f"{degraded} decided degraded (service unreachable, stale data or entries "
              "withheld from this key)")
    if failed:
        print(f"{failed} rows could not be checked or recorded (see the error column"
              f"{' of ' + str(out) if out else '; write a report with --out'}): "
              "the batch is incomplete")
    if out is not None:
        print(f"report written to {out}")
