"""``credit-check check``: a one-off check, and what the check commands share (the batch,
``check-file``, is in ``_batch``).

Exit codes: 0 ALLOW / GREEN_CHANNEL, 3 RESTRICT, 4 REVIEW, 5 DENY, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from pydantic import ValidationError

from credit_check._exceptions import ConfigurationError, CreditCheckError, InvalidSubjectId
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
