"""``credit-check catalog``: check a catalogue file (``validate``), merge a base with
provincial and city supplements (``merge``), and see what a new catalogue would change
before it applies (``diff``: every subject of a file decided on the current catalogue and
on the new one, the differences reported, nothing recorded).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from credit_check._catalog_layers import merge
from credit_check._exceptions import CatalogError, ConfigurationError, CreditCheckError
from credit_check._models import Catalog, Transaction

EXIT_BAD_INPUT = 2


def _fail(message: str) -> int:
    print(f"credit-check: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _read(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read it ({exc.strerror})") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from None


def _load(path: str) -> Catalog:
    data = _read(path)
    try:
        if isinstance(data, dict) and isinstance(data.get("supplements"), list):
            data = merge(data, data["supplements"])
        return Catalog.load(data)
    except CatalogError as exc:
        raise ValueError(f"{path}: {exc}") from None


def summary(catalog: Catalog) -> dict[str, Any]:
    """What a catalogue holds, as ``catalog validate`` shows it."""
    from credit_check._server._catalog_forms import required_schema

    return {
        "version": catalog.version, "schema": required_schema(catalog),
        "layers": [{"code": x.code, "level": x.level, "region": x.region, "name": x.name,
                    "source_document": x.source_document, "issuing_body": x.issuing_body}
                   for x in catalog.layers],
        "scenarios": sorted(str(s) for s in catalog.scenario_codes()),
        "lists": len(catalog.lists), "measures": len(catalog.measures),
        "unsupported": [f"{m.code}: {why}" for m, why in catalog.unsupported()],
    }


def catalog(args: argparse.Namespace) -> int:
    """Run ``credit-check catalog validate|merge|diff``."""
    try:
        if args.action == "validate":
            return _validate(args)
        if args.action == "merge":
            return _merge(args)
        return _diff(args)
    except ValueError as exc:
        return _fail(str(exc))


def _validate(args: argparse.Namespace) -> int:
    if len(args.files) != 1:
        return _fail("catalog validate takes one catalogue file")
    info = summary(_load(args.files[0]))
    if args.json:
        json.dump(info, sys.stdout, ensure_ascii=False, indent=2)
        print()
        return 0
    print(f"catalogue {info['version']}: schema {info['schema']}, {info['lists']} lists, "
          f"{info['measures']} measures")
    for layer in info["layers"]:
        print(f"  layer {layer['code']} ({layer['level']}"
              + (f", region {layer['region']}" if layer["region"] else "")
              + f"): {layer['name']} — {layer['issuing_body']} {layer['source_document']}")
    print(f"  scenarios: {', '.join(info['scenarios'])}")
    for line in info["unsupported"]:
        print(f"  cannot be applied by this version: {line}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    if len(args.files) < 2:
        return _fail("catalog merge takes a base catalogue and one or more supplements")
    base, *supplements = (_read(f) for f in args.files)
    if not isinstance(base, dict):
        return _fail(f"{args.files[0]}: not a catalogue")
    try:
        merged = merge(base, supplements)
        Catalog.load(merged)
    except CatalogError as exc:
        return _fail(str(exc))
    text = json.dumps(merged, ensure_ascii=False, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text, "utf-8")
        print(f"merged catalogue written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _diff(args: argparse.Namespace) -> int:
    from credit_check._batch._files import read_rows
    from credit_check._checker import Checker
    from credit_check._settings import Settings

    if len(args.files) != 2:
        return _fail("catalog diff takes the new catalogue and a CSV file of subjects")
    if not args.scenario:
        return _fail("catalog diff needs --scenario")
    shadow = _load(args.files[0])
    rows = list(read_rows(Path(args.files[1]), args.column))
    transaction = Transaction(scenario=args.scenario, region=args.region)
    invalid = [r for r in rows if r.subject is None]
    try:
        # A what-if: nothing is recorded, and the staged catalogue is not followed.
        settings = Settings.from_env(feedback=False)
        with Checker(settings=settings, shadow_catalog=shadow) as checker:
            for row in rows:
                if row.subject is not None:
                    checker.check(row.subject, transaction)
            report = checker.status()
    except ConfigurationError as exc:
        return _fail(str(exc))
    except CreditCheckError as exc:
        print(f"credit-check: {exc}", file=sys.stderr)
        return 1
    out = {"current_catalog": report.catalog_version, "new_catalog": shadow.version,
           "scenario": str(args.scenario), "region": args.region,
           "checked": report.shadow_checks, "differ": report.shadow_diff,
           "undecided": report.shadow_skipped, "errors": report.shadow_errors,
           "invalid_rows": [r.number for r in invalid],
           "changes": report.shadow_changes, "differences": list(report.shadow_diff_sample)}
    if args.json:
        json.dump(out, sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        print(f"catalogue {out['current_catalog']} -> {out['new_catalog']}, scenario "
              f"{out['scenario']}" + (f", region {args.region}" if args.region else "")
              + f": {out['checked']} checked, {out['differ']} would be decided otherwise"
              + (f", {out['undecided']} undecided" if out["undecided"] else "")
              + (f", {len(invalid)} invalid rows" if invalid else ""))
        for change, count in out["changes"].items():
            print(f"  {change}: {count}")
        for d in out["differences"]:
            print(f"  {d['subject']}: {d['live']} -> {d['shadow']}"
                  + (f"  +{','.join(d['added'])}" if d["added"] else "")
                  + (f"  -{','.join(d['removed'])}" if d["removed"] else ""))
    return EXIT_BAD_INPUT if invalid or out["errors"] else 0
