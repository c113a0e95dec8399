"""``credit-check report case CASE_ID`` (the 查询记录 of a case from the data directory's
records) and ``credit-check report verify FILE`` (its digest recomputed).

Exit codes: 0 done / verified, 1 no records for the case / the digest does not match,
2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from credit_check._case_report import build, to_csv, to_html, verify_text
from credit_check._crypto import canonical_json
from credit_check._exceptions import ConfigurationError, CreditCheckError

EXIT_BAD_INPUT = 2


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"credit-check: error: {message}", file=sys.stderr)
    return code


def case(args: argparse.Namespace) -> int:
    """Write the query record of one case."""
    from credit_check._checker import Checker

    case_id = args.target
    if not case_id or len(case_id) > 128 or not case_id.isprintable():
        return _fail("CASE_ID: give the case id (办件编号) the checks were made with")
    try:
        # No threads, no network: the records are read from the data directory.
        with Checker.from_env(start=False) as checker:
            records = checker.checks_for_case(case_id)
            department = checker.settings.department
    except ConfigurationError as exc:
        return _fail(str(exc))
    except CreditCheckError as exc:
        return _fail(str(exc), 1)
    if not records:
        return _fail(f"no records are kept for case {case_id!r} in this data directory "
                     "(CREDIT_CHECK_DATA_DIR, or CREDIT_CHECK_OUTBOX_URL); delivered records "
                     "are kept for the retention period, the platform keeps them for good", 1)
    report = build(case_id, records, department=department)
    if args.format == "json":
        text = canonical_json(report).decode() + "\n"
    elif args.format == "csv":
        text = to_csv(report)
    else:
        text = to_html(report)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            return _fail(f"--out {args.out}: {exc.strerror or exc}")
        print(f"{args.out}: {report['count']} records of case {case_id}, sha256 "
              f"{report['digest']}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def verify(args: argparse.Namespace) -> int:
    """Recompute a report's digest and compare it with the one it states."""
    try:
        text = Path(args.target).read_text(encoding="utf-8")
    except FileNotFoundError:
        return _fail(f"{args.target}: no such file")
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"{args.target}: cannot read it ({type(exc).__name__})")
    try:
        ok, stated, again = verify_text(text)
    except ValueError as exc:
        return _fail(f"{args.target}: {exc}")
    if ok:
        print(f"校验码一致 / digest verified: {again} — the records in this file are the ones "
              "the digest was printed for (receipts: credit-check receipt verify FILE)")
        return 0
    print(f"校验码不一致 / digest MISMATCH: the file states {stated}, its records give {again}"
          " — the records were changed after the report was made")
    return 1
