"""Helpers for the outbox tests, and the child process of the crash test.

As a script: ``python _outbox_child.py DATA_DIR BASE_URL API_KEY RUN COUNT [checker]``
makes COUNT checks, printing each decision id only after the check returned, while the
feedback is delivered in the background. With ``checker`` a real ``Checker`` makes them
(its outbox is ``OUTBOX_FILE`` in DATA_DIR); without, a check is simulated as a Decision
recorded with ``Outbox.add`` into ``outbox.db`` and sent by an ``OutboxSender``.
"""

from __future__ import annotations

import base64
import datetime as dt
import sys
import uuid
from pathlib import Path
from typing import Any

from credit_check._crypto import FieldCipher, feedback_key
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


def make_outbox(path: Path, *, api_key: str = API_KEY, **kwargs: Any) -> Outbox:
    return Outbox(path, cipher=FieldCipher(CIPHER_KEY), hmac_key=feedback_key(api_key), **kwargs)


def org_id(i: int) -> str:
    """A valid, fictional USCC (统一社会信用代码) numbered ``i``."""
    from credit_check._ids import org_code_check_char, uscc_check_char

    org = f"{i:08d}"
    body = "91" + "110108" + org + org_code_check_char(org)
    return body + uscc_check_char(body)


def run_checker(data_dir: str, base_url: str, api_key: str, run: str, count: int) -> int:
    from credit_check._checker import Checker

    with Checker(base_url=base_url, api_key=api_key, department="财政局", data_dir=data_dir,
                 encryption_key=CHECKER_KEY) as checker:
        checker.wait_ready(30)
        transaction = Transaction(scenario="procurement", case_id=f"CRASH-{run}")
        for i in range(count):
            decision = checker.check(Subject.organization(org_id(i)), transaction)
            sys.stdout.write(f"{decision.decision_id}\n")
            sys.stdout.flush()
    return 0


def main(argv: list[str]) -> int:
    from credit_check._feedback import decision_record
    from credit_check._sender import OutboxSender
    from credit_check._transport import Transport

    data_dir, base_url, api_key, run, count = argv[1], argv[2], argv[3], argv[4], int(argv[5])
    if argv[6:] == ["checker"]:
        return run_checker(data_dir, base_url, api_key, run, count)
    outbox = make_outbox(Path(data_dir) / "outbox.db", api_key=api_key)
    transport = Transport(base_url, api_key, retries=0)
    sender = OutboxSender(outbox, transport, batch_size=200, max_delay=0.05, backoff=0.05,
                          max_backoff=0.5, lease=5.0)
    sender.start()
    for i in range(count):
        decision = make_decision(i, case_id=f"CRASH-{run}", decision_id=f"{run}-{i}")
        outbox.add(decision_record(decision, department="财政局"))
        sender.wake()
        sys.stdout.write(f"{decision.decision_id}\n")
        sys.stdout.flush()
    sender.close(30.0)
    outbox.close()
    transport.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
