"""The ``credit-check`` command line: argument parsing and dispatch.

Each command's work lives in its own module, imported only when that command runs, so
``credit-check --help`` stays fast and a missing optional dependency only affects the
command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from credit_check._codes import Scenario, check_region, scenario_code

EXIT_BAD_INPUT = 2

# command name -> "module:function"; the function takes the parsed Namespace, returns exit code
_COMMANDS = {
    "serve": "credit_check._server._command:serve",
    "check": "credit_check._cli_check:check",
    "check-file": "credit_check._batch._command:check_file",
    "demo": "credit_check._demo:run",
    "outbox": "credit_check._outbox._cli:outbox",
    "catalog": "credit_check._cli_catalog:catalog",
    "cases": "credit_check._lifecycle._cli:cases",
    "commitments": "credit_check._lifecycle._cli:commitments",
    "receipt": "credit_check._cli_receipt:receipt",
    # commands with sub-commands: "command sub-command"
    "report case": "credit_check._cli_report:case",
    "report verify": "credit_check._cli_report:verify",
    "report monthly": "credit_check._monthly._command:monthly",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("credit-check")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors exit with code 2 and one clear line, no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"credit-check: error: {message}\n"
                                  f"Run '{self.prog} --help' for usage.\n"
                  if " " in self.prog else f"credit-check: error: {message}\n")


def _scenario(text: str) -> str:
    try:
        return scenario_code(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _region(text: str) -> str:
    try:
        return check_region(text.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="credit-check", description="逢办必查: credit checks for approval systems")
    parser.add_argument("--version", action="version", version=f"credit-check {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    scenarios = ", ".join(s.value for s in Scenario)

    p = sub.add_parser("serve", help="run the sandbox list service (or: serve keygen FILE, "
                                     "serve rotate-key NEW_FILE)")
    p.add_argument("action", nargs="?", choices=["keygen", "rotate-key"],
                   help="keygen FILE [--data-key FILE]: make the keys that every instance on "
                        "one PostgreSQL database is given; rotate-key NEW_FILE: sign with a "
                        "new key from now on (the old one stays listed for old receipts)")
    p.add_argument("file", nargs="?", metavar="FILE",
                   help="keygen: the signing key file; rotate-key: the new key file")
    p.add_argument("--demo", action="store_true", help="load fictional demo data")
    p.add_argument("--db", metavar="PATH|URL",
                   help="SQLite database file, or postgresql://user@host:port/dbname "
                        "(or CREDIT_CHECK_SANDBOX_DB; default credit-check-sandbox.db)")
    p.add_argument("--signing-key", metavar="FILE",
                   help="the service's signing key (or CREDIT_CHECK_SIGNING_KEY_FILE); "
                        "needed with PostgreSQL")
    p.add_argument("--data-key", metavar="FILE",
                   help="the key sealing personal data at rest (or "
                        "CREDIT_CHECK_SANDBOX_DATA_KEY_FILE); needed with PostgreSQL")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8600)
    p.add_argument("--admin-key", metavar="KEY", help="admin key (or CREDIT_CHECK_ADMIN_KEY)")
    p.add_argument("--print-showcase", action="store_true",
                   help="print the demo data's showcase subjects (fictional) and exit")
    p.add_argument("--json", action="store_true", help="print start-up information as JSON")

    p = sub.add_parser("check", help="check one subject")
    p.add_argument("id", help="统一社会信用代码 or 身份证号码")
    p.add_argument("--scenario", required=True, type=_scenario, metavar="SCENARIO",
                   help=f"{scenarios}, or a scenario code the catalogue names")
    p.add_argument("--region", type=_region, help="six-digit GB/T 2260 code of the case "
                   "(default CREDIT_CHECK_REGION): selects the catalogue's supplements")
    p.add_argument("--case-id", help="the case (办件) id")
    p.add_argument("--json", action="store_true", help="print the Decision as JSON")

    p = sub.add_parser("check-file", help="check every subject of a CSV or Excel file")
    p.add_argument("file", help="a CSV (UTF-8 or GB18030) or .xlsx file with a header row")
    p.add_argument("--scenario", required=True, type=_scenario, metavar="SCENARIO",
                   help=f"{scenarios}, or a scenario code the catalogue names")
    p.add_argument("--region", type=_region, help="six-digit GB/T 2260 code of the cases "
                   "(default CREDIT_CHECK_REGION)")
    p.add_argument("--column", default="id", help="the identifier column (default: id)")
    p.add_argument("--sheet", help="the worksheet of an .xlsx file (default: the first)")
    p.add_argument("--out", metavar="REPORT.csv|.xlsx",
                   help="write the report of every row here (.xlsx by its suffix)")
    p.add_argument("--case-id", help="the case (办件) id, e.g. the tender number")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print a JSON summary")

    p = sub.add_parser("catalog", help="a measure catalogue: validate a file, merge "
                                       "supplements, diff a new one against the current")
    p.add_argument("action", choices=["validate", "merge", "diff"],
                   help="validate FILE; merge BASE SUPPLEMENT... [--out FILE]; diff NEW.json "
                        "SUBJECTS.csv --scenario S (decides each subject on the current and "
                        "the new catalogue, records nothing)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--scenario", type=_scenario, metavar="SCENARIO", help="diff: the scenario")
    p.add_argument("--region", type=_region, help="diff: the cases' six-digit region code")
    p.add_argument("--column", default="id", help="diff: the identifier column (default: id)")
    p.add_argument("--out", metavar="FILE", help="merge: write the merged catalogue here")
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = sub.add_parser("demo", help="run the end-to-end demo on an embedded sandbox")
    p.add_argument("--json", action="store_true", help="print the results as JSON")

    p = sub.add_parser("outbox", help="the feedback outbox: status, flush, run the sender, "
                                      "salvage records")
    p.add_argument("action", choices=["status", "flush", "run", "salvage"],
                   help="status; flush (deliver now); run (the data directory's sender as "
                        "its own process); salvage [FILE] (recover records)")
    p.add_argument("file", nargs="?", metavar="FILE",
                   help="salvage: a damaged outbox copy or a journal (default: retry the "
                        "records kept aside in the live outbox)")
    p.add_argument("--key", metavar="BASE64",
                   help="salvage: another encryption key to try (the key of the time)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="flush: seconds to try; run: seconds to deliver on stop")
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = sub.add_parser("cases", help="watched cases, and those a re-screen changed or "
                                     "found resting on an entry removed as wrong")
    p.add_argument("--changed", action="store_true",
                   help="cases whose outcome became more severe after a sync")
    p.add_argument("--lift", action="store_true",
                   help="decisions whose measures rest on entries removed as wrong")
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = sub.add_parser("commitments", help="the commitment ledger (信用承诺)")
    p.add_argument("--subject", metavar="ID", help="only this subject's commitments")
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = sub.add_parser("receipt", help="check a receipt (查询凭证) offline")
    p.add_argument("action", choices=["verify"], help="verify FILE: check the signatures "
                   "with the pinned service key and say what the receipt proves")
    p.add_argument("file", metavar="FILE", help="a receipt, a decision or record with one, "
                   "a list of them, or a case report's JSON")
    p.add_argument("--id", help="the subject's id: checks a person's salted binding (and "
                   "that the receipt names this subject)")
    p.add_argument("--key", action="append", metavar="BASE64",
                   help="a service public key (repeatable; default "
                        "CREDIT_CHECK_SERVICE_PUBLIC_KEY and the data directory's key)")
    p.add_argument("--keys", metavar="FILE", help="a saved GET /v1/keys answer: its previous "
                   "keys verify receipts from before a key rotation")
    p.add_argument("--json", action="store_true", help="print the results as JSON")

    p = sub.add_parser("report", help="reports: case (the query record of a case), verify "
                                      "(a case report's digest), monthly (the monitoring report)")
    reports = p.add_subparsers(dest="report", required=True, parser_class=_Parser)
    r = reports.add_parser("case", help="the query record (查询记录) of a case: every record "
                                        "of the case from the data directory")
    r.add_argument("target", metavar="CASE_ID")
    r.add_argument("--format", choices=["html", "csv", "json"], default="html",
                   help="html (printable, A4), csv or json (default html)")
    r.add_argument("--out", metavar="FILE", help="write here (default: stdout)")
    r = reports.add_parser("verify", help="recompute a case report's digest")
    r.add_argument("target", metavar="FILE")
    r = reports.add_parser("monthly", help="the monthly monitoring report (跟踪、监测、统计) "
                                           "per department, from the service's admin API")
    r.add_argument("--month", metavar="YYYY-MM", help="the month (default: the last one)")
    r.add_argument("--format", choices=["html", "xlsx"], default="html")
    r.add_argument("--out", metavar="FILE",
                   help="default: credit-check-monthly-YYYY-MM.html|xlsx")
    r.add_argument("--base-url", metavar="URL", help="the list service (or "
                                                     "CREDIT_CHECK_BASE_URL)")
    r.add_argument("--admin-key", metavar="KEY", help="its admin key (or "
                                                      "CREDIT_CHECK_ADMIN_KEY)")
    r.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``credit-check`` console script."""
    args = build_parser().parse_args(argv)
    name = args.command
    if getattr(args, name, None) is not None and f"{name} {getattr(args, name)}" in _COMMANDS:
        name = f"{name} {getattr(args, name)}"
    module_name, func_name = _COMMANDS[name].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
