"""``credit-check cases`` and ``credit-check commitments``: what the case follow-up found
and the commitment ledger, read from the data directory (or the outbox database).

Configuration comes from the environment, as for the Checker: ``CREDIT_CHECK_DATA_DIR``,
the encryption key (``CREDIT_CHECK_ENCRYPTION_KEY`` or the data directory's key file), and
``CREDIT_CHECK_OUTBOX_URL`` when the records are in PostgreSQL. Subjects are shown masked.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Any

from credit_check._datadir import KEY_FILE, DataDir
from credit_check._exceptions import ConfigurationError, InvalidSubjectId, OutboxError
from credit_check._lifecycle._db import LIFECYCLE_FILE, open_tables
from credit_check._lifecycle._ledger import Commitment, _shown, commitment_of
from credit_check._lifecycle._store import LifecycleStore
from credit_check._models import Subject
from credit_check._pg import Database
from credit_check._settings import Settings

EXIT_OK, EXIT_ERROR, EXIT_CONFIG = 0, 1, 2


def _run(show: Callable[[LifecycleStore, argparse.Namespace], int],
         args: argparse.Namespace) -> int:
    db = None
    try:
        settings = Settings.from_env()
        key = settings.encryption_key
        url = settings.outbox_url.get_secret_value() if settings.outbox_url else None
        path = settings.data_dir.expanduser()
        if url is None and not (path / LIFECYCLE_FILE).exists():
            raise ConfigurationError(f"no case follow-up in {str(path)!r}; set "
                                     "CREDIT_CHECK_DATA_DIR to the data directory your "
                                     "checkers use")
        if key is None and not (path / KEY_FILE).exists():
            raise ConfigurationError("CREDIT_CHECK_ENCRYPTION_KEY: missing, and the data "
                                     "directory has no key file; set the key your checkers use")
        cipher = DataDir(path).cipher(key.get_secret_value() if key else None)
        if url is not None:
            db = Database(url, what="outbox database", max_size=2)
        store = LifecycleStore(open_tables(path, db), cipher)
        try:
            return show(store, args)
        finally:
            store.tables.close()
    except ConfigurationError as exc:
        print(f"credit-check: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OutboxError as exc:
        print(f"credit-check: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if db is not None:
            db.close()


def cases(args: argparse.Namespace) -> int:
    """``credit-check cases [--changed] [--lift] [--json]``."""
    return _run(_cases, args)


def commitments(args: argparse.Namespace) -> int:
    """``credit-check commitments [--subject ID] [--json]``."""
    return _run(_commitments, args)


def _cases(store: LifecycleStore, args: argparse.Namespace) -> int:
    kinds = [k for k, on in (("changed", args.changed), ("lift", args.lift)) if on]
    if kinds:
        events = store.events(kinds)
        if args.json:
            print(json.dumps({"events": events}, ensure_ascii=False))
            return EXIT_OK
        if not events:
            print("no case changed" if kinds == ["changed"] else "nothing found")
        for e in events:
            lifted = f"  lift: {', '.join(e['lifted_entries'])}" if e["kind"] == "lift" else ""
            print(f"{e['at'][:19]}  case {e['case_id'] or '-'}  {e['subject']}  "
                  f"{e['previous']} -> {e['outcome']}  (decision {e['decision_id']}, "
                  f"data {e['data_version']}){lifted}")
        return EXIT_OK
    rows = store.open_watches()
    baselines = store.baselines([r[0] for r in rows])
    watched = [{"case_id": b["transaction"].get("case_id"), "decision_id": d,
                "subject": _shown(b["subject"]), "scenario": b["transaction"]["scenario"],
                "outcome": b["outcome"], "decided_at": b["created_at"]}
               for d, b in baselines.items()]
    watched.sort(key=lambda w: (str(w["case_id"]), str(w["decided_at"])))
    if args.json:
        print(json.dumps({"cases": watched, "counts": store.counts()}, ensure_ascii=False))
        return EXIT_OK
    print(f"{len(watched)} watched decision(s)")
    for w in watched:
        print(f"case {w['case_id'] or '-'}  {w['subject']}  {w['scenario']}  {w['outcome']}  "
              f"(decision {w['decision_id']}, {str(w['decided_at'])[:19]})")
    return EXIT_OK


def _plain(c: Commitment) -> dict[str, Any]:
    data = dataclasses.asdict(c)
    data.update(due=c.due.isoformat(), created_at=c.created_at.isoformat(),
                items=list(c.items), received=list(c.received),
                outstanding=list(c.outstanding))
    return data


def _commitments(store: LifecycleStore, args: argparse.Namespace) -> int:
    subject_id = None
    if args.subject:
        try:
            subject_id = Subject.parse(args.subject).id
        except InvalidSubjectId as exc:
            print(f"credit-check: error: --subject: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    found = [commitment_of(r) for r in store.commitments(subject_id)]
    if args.json:
        print(json.dumps({"commitments": [_plain(c) for c in found]}, ensure_ascii=False))
        return EXIT_OK
    if not found:
        print("no commitments")
    for c in found:
        due = c.due.isoformat() + (" (provisional)" if c.provisional else "")
        rest = f"  outstanding: {'; '.join(c.outstanding)}" if c.outstanding else ""
        print(f"{c.commitment_id}  case {c.case_id or '-'}  {c.subject}  due {due}  "
              f"{c.state}{rest}")
    return EXIT_OK
