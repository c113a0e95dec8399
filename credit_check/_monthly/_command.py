"""``credit-check report monthly [--month YYYY-MM] [--format html|xlsx] [--out FILE]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from credit_check._exceptions import ConfigurationError, CreditCheckError

EXIT_BAD_INPUT = 2


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"credit-check: error: {message}", file=sys.stderr)
    return code


def monthly(args: argparse.Namespace) -> int:
    """Write the monthly monitoring report; exit 0, 2 for bad input or a refused key,
    1 when the service cannot be reached."""
    from credit_check._monthly._gather import gather, parse_month

    try:
        month = parse_month(args.month)
    except ValueError as exc:
        return _fail(str(exc))
    base_url = args.base_url or os.environ.get("CREDIT_CHECK_BASE_URL")
    admin_key = args.admin_key or os.environ.get("CREDIT_CHECK_ADMIN_KEY")
    if not base_url:
        return _fail("the list service's URL is needed: --base-url URL or "
                     "CREDIT_CHECK_BASE_URL")
    if not admin_key:
        return _fail("the service's admin key is needed: --admin-key KEY or "
                     "CREDIT_CHECK_ADMIN_KEY")
    out = Path(args.out or f"credit-check-monthly-{month}.{args.format}")
    if not out.parent.is_dir():
        return _fail(f"cannot write the report {out}: no directory {out.parent}")
    try:
        data = gather(base_url, admin_key, month)
    except ConfigurationError as exc:
        return _fail(str(exc))
    except CreditCheckError as exc:
        return _fail(str(exc), 1)
    try:
        if args.format == "xlsx":
            from credit_check._monthly._xlsx import write

            write(data, out)
        else:
            from credit_check._monthly._html import render

            out.write_text(render(data), encoding="utf-8")
    except ConfigurationError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write the report {out}: {exc.strerror or exc}")
    total, coverage = data.overall["total"], data.overall["coverage"]
    if args.json:
        print(json.dumps({"report": str(out), **data.as_json()}, ensure_ascii=False))
    else:
        ratio = coverage["ratio"]
        print(f"{month}: {total['checks']} checks, {total['hits']} hits, "
              f"{total['degraded']} degraded; {coverage['cases_handled']} cases handled, "
              f"coverage {'—' if ratio is None else f'{ratio:.1%}'}, "
              f"{coverage['unchecked_total']} without a check; "
              f"{len(data.departments)} departments")
        print(f"report written to {out} (due before {data.due.isoformat()})")
    return 0
