"""A real Checker, against the real sandbox over loopback, whose decision records cannot be
written (as on a full disk): for the middleware's and the adapters' DESIGN rule 13 tests.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _middleware_fakes import CLEAN

from credit_check import Checker, DecisionGroup, OutboxError, Subject, Transaction
from credit_check._models import Decision
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE

DEFAULTER = SHOWCASE["court_defaulter_org"]  # court.judgment_defaulter: DENY in bidding
FULL = "cannot write the decision record: database or disk is full"


class Unrecorded:
    """Decides with a real Checker (feedback off: nothing is written), then raises the
    ``OutboxError`` carrying the decision that ``check()`` raises when its record cannot be
    written."""

    def __init__(self, checker: Checker) -> None:
        self.checker = checker
        self.settings = checker.settings

    def check(self, subject: Subject | str, transaction: Transaction) -> Decision:
        raise OutboxError(FULL, decision=self.checker.check(subject, transaction))

    def check_local(self, subject: Subject | str, transaction: Transaction) -> Decision | None:
        decision = self.checker.check_local(subject, transaction)
        if decision is None:
            return None  # a lookup is needed: check() in a thread raises
        raise OutboxError(FULL, decision=decision)

    def check_many(self, subjects: Iterable[Subject | str],
                   transaction: Transaction) -> DecisionGroup:
        raise OutboxError(FULL, decision=self.checker.check_many(subjects, transaction))


@dataclass
class Sandboxed:
    """The real checker, its failing twin, and the ids the tests use."""

    checker: Checker
    unrecorded: Unrecorded
    defaulter: str = DEFAULTER
    clean: str = CLEAN


@contextlib.contextmanager
def sandboxed(tmp: Path, **options: Any) -> Iterator[Sandboxed]:
    """The demo sandbox on a loopback port and a synced Checker, feedback off."""
    server = SandboxServer(db_path=tmp / "sandbox.sqlite3", demo=True, port=0)
    server.start()
    try:
        with Checker(base_url=server.base_url, api_key=server.demo_key,
                     department="市公共资源交易中心", data_dir=tmp / "sdk", feedback=False,
                     encryption_key=base64.b64encode(b"integration-key-32-bytes-long!!!")
                     .decode(), service_public_key=server.public_key, start=False,
                     **options) as checker:
            assert checker.sync(), checker.status().last_error
            yield Sandboxed(checker, Unrecorded(checker))
    finally:
        server.stop()
