"""Helpers for the outbox tests, and the child process of the crash test.

As a script: ``python _outbox_child.py DATA_DIR BASE_URL API_KEY RUN COUNT [OUTBOX_URL]``
makes COUNT checks with a real ``Checker`` (its outbox is ``OUTBOX_FILE`` in DATA_DIR, or
in the PostgreSQL database OUTBOX_URL), printing each
decision id only after the check returned, while the feedback is delivered in the
background.
"""

from __future__ import annotations

import base64
import datetime as dt
import sys
import uuid
from pathlib import Path
from typing import Any

from credit_check._crypto import FieldCipher, feedback_key
from credit_check._feedback import record_id_for
from credit_check._models import (
    CST,
    Decision,
    ListEntry,
    Outcome,
    Subject,
    Transaction,
)
from credit_check._outbox import Outbox

PERSON = "11010519491231002X"
PERSON_NAME = "王小明"
ORG = "91350100M000100Y43"
ORG_NAME = "示例科技有限公司"
API_KEY = "outbox-test-api-key"
CIPHER_KEY = bytes(range(32))
CHECKER_KEY = base64.b64encode(CIPHER_KEY).decode()


def make_decision(
    i: int = 0, *, case_id: str | None = "CASE-1", person: bool = True, matched: bool = True,
    decision_id: str | None = None,
) -> Decision:
    """A Decision on a natural person (with a matched entry naming them) or an organisation."""
    subject = Subject.person(PERSON, PERSON_NAME) if person else Subject.organization(ORG, ORG_NAME)
    matches = []
    if matched:
        matches.append(ListEntry(
            entry_id=f"court:{i}", list_code="court.judgment_defaulter", list_kind="black",
            subject_id=subject.id, subject_kind=subject.kind, name=subject.name,
            issuing_department="某市中级人民法院", effective_from="2024-01-01",
        ))
    return Decision(
        decision_id=decision_id or uuid.uuid4().hex,
        outcome=Outcome.DENY if matched else Outcome.ALLOW,
        subject=subject,
        transaction=Transaction(scenario="procurement", case_id=case_id, department="财政局",
                                operator="clerk-7"),
        matches=matches,
        catalog_version="2026.1",
        data_version="17",
        decided_at=dt.datetime(2026, 3, 1, 9, 30, tzinfo=CST) + dt.timedelta(seconds=i),
    )


def make_outbox(directory: Path, *, api_key: str = API_KEY, **kwargs: Any) -> Outbox:
    """The outbox of a data directory, with the tests' fixed key."""
    return Outbox(directory, cipher=FieldCipher(CIPHER_KEY), hmac_key=feedback_key(api_key),
                  **kwargs)


def write(outbox: Outbox, i: int = 0, **kwargs: Any) -> str:
    """Record ``make_decision(i)``; the record id it gets."""
    decision = make_decision(i, **kwargs)
    outbox.write_decision(decision, "d")
    return record_id_for("decision", decision.decision_id)


def import_new(outbox: Outbox) -> int:
    """Import what the journals hold now; how many records were new."""
    from credit_check._outbox._importer import Importer

    return Importer(outbox.journal_dir, outbox.store, FieldCipher(CIPHER_KEY),
                    feedback_key(API_KEY)).run(max_records=10**9)


def import_all(outbox: Outbox) -> list[Any]:
    """Import every journal into the store (what the sender does first); the records
    claimed from the store afterwards, in order."""
    import_new(outbox)
    claimed = outbox.store.claim(10**9, lease=0.0, owner="tests:0")
    outbox.store.release([c.seq for c in claimed])
    return claimed


def org_id(i: int) -> str:
    """A valid, fictional USCC (统一社会信用代码) numbered ``i``."""
    from credit_check._ids import org_code_check_char, uscc_check_char

    org = f"{i:08d}"
    body = "91" + "110108" + org + org_code_check_char(org)
    return body + uscc_check_char(body)


def run_checker(data_dir: str, base_url: str, api_key: str, run: str, count: int,
                outbox_url: str | None = None) -> int:
    from credit_check._checker import Checker

    with Checker(base_url=base_url, api_key=api_key, department="财政局", data_dir=data_dir,
                 encryption_key=CHECKER_KEY, outbox_url=outbox_url) as checker:
        checker.wait_ready(30)
        transaction = Transaction(scenario="procurement", case_id=f"CRASH-{run}")
        for i in range(count):
            decision = checker.check(Subject.organization(org_id(i)), transaction)
            sys.stdout.write(f"{decision.decision_id}\n")
            sys.stdout.flush()
    return 0


def main(argv: list[str]) -> int:
    data_dir, base_url, api_key, run, count = argv[1], argv[2], argv[3], argv[4], int(argv[5])
    return run_checker(data_dir, base_url, api_key, run, count,
                       argv[6] if len(argv) > 6 else None)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
