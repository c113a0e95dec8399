"""A scripted checker and ready-made identifiers for the middleware and adapter tests.

Decisions are made by the real rulebook (``credit_check._rules.decide``) over the demo
catalogue, from list entries keyed by subject id, so outcomes and texts are genuine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.resources
import itertools
import json
import threading
import warnings
from collections.abc import Iterable
from typing import Any

from credit_check._checker_types import DecisionGroup
from credit_check._ids import id_number_check_char, org_code_check_char, uscc_check_char
from credit_check._models import (
    CST,
    Catalog,
    Decision,
    ListEntry,
    ListKind,
    Outcome,
    Subject,
    SubjectKind,
    Transaction,
)
from credit_check._rules import decide, fallback_decision

with warnings.catch_warnings():
    # Starlette 1.x prefers the httpx2 package; the dev environment has httpx, which still
    # works. Importing the test client once here keeps the warning out of every test.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient  # noqa: F401  (re-exported)

CATALOG = Catalog.load(json.loads(
    importlib.resources.files("credit_check.data").joinpath("demo_catalog.json").read_text()))
NOW = dt.datetime(2026, 3, 1, 10, 0, tzinfo=CST)


def make_uscc(n: int) -> str:
    """A valid USCC with organisation code number ``n``."""
    org = f"MA{n:06d}"
    body = "91350100" + org + org_code_check_char(org)
    return body + uscc_check_char(body)


def make_person(n: int) -> str:
    """A valid id number born 1980-01-01 with sequence ``n``."""
    body = f"110105198001011{n:02d}"
    return body + id_number_check_char(body)


CLEAN = make_uscc(1)        # no entries → allow
DEFAULTER = make_uscc(2)    # court.judgment_defaulter → deny (bidding) / review (licensing)
ABNORMAL = make_uscc(3)     # market.abnormal_operation → restrict (licensing)
A_GRADE = make_uscc(4)      # tax.a_grade → green_channel (licensing)
REMOTE = make_uscc(5)       # clean, but check_local answers None (needs the network)
DEGRADED = make_uscc(6)     # fallback decision, degraded, outcome review
BOOM = make_uscc(7)         # the checker raises
PERSON = make_person(1)     # a clean natural person
REP_DEFAULTER = make_person(2)  # a legal representative on court.judgment_defaulter
BAD_USCC = CLEAN[:-1] + ("0" if CLEAN[-1] != "0" else "1")

_LISTS = {
    DEFAULTER: "court.judgment_defaulter",
    ABNORMAL: "market.abnormal_operation",
    A_GRADE: "tax.a_grade",
}


def _entry(subject_id: str, list_code: str, kind: SubjectKind) -> ListEntry:
    definition = CATALOG.list_definition(list_code)
    assert definition is not None
    return ListEntry(
        entry_id=f"E-{subject_id[-6:]}-{list_code}", list_code=list_code,
        list_kind=definition.kind, subject_id=subject_id, subject_kind=kind,
        issuing_department="某市中级人民法院" if definition.kind is ListKind.BLACK
        else "某市税务局",
        basis_document="（2025）执字第1号", reason="test entry",
        effective_from=NOW - dt.timedelta(days=30),
    )


class FakeChecker:
    """Decides from ``_LISTS`` with the real rulebook; records every call and its thread."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...], Transaction, str]] = []
        self.subjects: list[Subject] = []
        self._ids = itertools.count(1)
        self.remote = {REMOTE}

    def _record(self, method: str, subjects: Iterable[Subject], tx: Transaction) -> None:
        subjects = list(subjects)
        self.subjects.extend(subjects)
        self.calls.append((method, tuple(s.id for s in subjects), tx,
                           threading.current_thread().name))

    def _decide(self, subject: Subject, tx: Transaction) -> Decision:
        decision_id = f"D{next(self._ids):04d}"
        if subject.id == BOOM:
            raise RuntimeError(f"lookup exploded for {subject.id}")
        if subject.id == DEGRADED:
            return fallback_decision(subject=subject, transaction=tx, outcome=Outcome.REVIEW,
                                     now=NOW, decision_id=decision_id,
                                     catalog_version=CATALOG.version, cause="timeout")
        entries = []
        if subject.id in _LISTS:
            entries.append(_entry(subject.id, _LISTS[subject.id], subject.kind))
        rep_entries = []
        rep = subject.legal_representative
        if rep is not None and rep.id == REP_DEFAULTER:
            rep_entries.append(_entry(rep.id, "court.judgment_defaulter", SubjectKind.PERSON))
        return decide(subject=subject, transaction=tx, catalog=CATALOG, now=NOW,
                      decision_id=decision_id, entries=entries,
                      representative_entries=rep_entries, data_version="test")

    def check(self, subject: Subject | str, transaction: Transaction) -> Decision:
        subject = subject if isinstance(subject, Subject) else Subject.parse(subject)
        self._record("check", [subject], transaction)
        return self._decide(subject, transaction)

    def check_local(self, subject: Subject | str, transaction: Transaction) -> Decision | None:
        subject = subject if isinstance(subject, Subject) else Subject.parse(subject)
        if subject.id in self.remote:
            return None
        self._record("check_local", [subject], transaction)
        return self._decide(subject, transaction)

    def check_many(self, subjects: Iterable[Subject | str],
                   transaction: Transaction) -> DecisionGroup:
        parsed = [s if isinstance(s, Subject) else Subject.parse(s) for s in subjects]
        self._record("check_many", parsed, transaction)
        return DecisionGroup(self._decide(s, transaction) for s in parsed)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def multipart(fields: dict[str, str], boundary: str = "XyZzY123",
              file: tuple[str, bytes] | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    out = []
    for key, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'
                   f"{value}\r\n".encode())
    if file is not None:
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="doc"; '
                   f'filename="{file[0]}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                   .encode() + file[1] + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def problem(body: Any) -> dict[str, Any]:
    assert isinstance(body, dict)
    for key in ("type", "title", "status", "detail"):
        assert key in body, key
    return body
