"""The post-check queue (补查): durable, encrypted at rest, de-duplicated; the runner
re-checks queued decisions, records every result and calls back on a change or a hit."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from credit_check._crypto import FieldCipher
from credit_check._engine import Mode
from credit_check._exceptions import ServiceUnavailable
from credit_check._models import CST, Decision, Outcome, Subject, Transaction
from credit_check._postcheck import PostCheckQueue, PostCheckRunner
from credit_check._rules import fallback_decision

PERSON = "11010519491231002X"
CIPHER = FieldCipher(b"p" * 32)
NOW = dt.datetime(2026, 3, 1, tzinfo=CST)


def degraded(subject_id: str = PERSON, decision_id: str = "d1") -> Decision:
    return fallback_decision(
        subject=Subject.person(subject_id), transaction=Transaction(scenario="subsidy"),
        outcome=Outcome.REVIEW, now=NOW, decision_id=decision_id, catalog_version="1",
    )


def test_queue_is_durable_and_encrypted_at_rest(tmp_path: Path) -> None:
    path = tmp_path / "pc.sqlite3"
    q = PostCheckQueue(path, CIPHER)
    q.add(degraded())
    q.add(degraded())  # the same decision is queued once
    q.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert PERSON.encode() not in raw
    again = PostCheckQueue(path, CIPHER)
    assert again.size() == 1
    [(seq, d)] = again.pending()
    assert d.subject.id == PERSON and d.degraded
    again.attempted(seq)
    again.done(seq)
    assert again.size() == 0
    again.close()


def test_queue_with_another_key_fails_loudly(tmp_path: Path) -> None:
    from credit_check._exceptions import ConfigurationError

    path = tmp_path / "pc.sqlite3"
    PostCheckQueue(path, CIPHER).add(degraded())
    other = PostCheckQueue(path, FieldCipher(base64.b64decode(base64.b64encode(b"q" * 32))))
    with pytest.raises(ConfigurationError, match="ENCRYPTION_KEY"):
        other.pending()


class FakeEngine:
    def __init__(self, outcome: Outcome, fail_after: int | None = None) -> None:
        self.outcome = outcome
        self.fail_after = fail_after
        self.calls = 0

    def decide_many(self, subjects: list[Subject], transaction: Transaction,
                    mode: Mode) -> list[Decision]:
        assert mode is Mode.STRICT
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise ServiceUnavailable("down again")
        return [Decision(decision_id=f"new{self.calls}", outcome=self.outcome,
                         subject=subjects[0], transaction=transaction, decided_at=NOW)]


class FakeOutbox:
    def __init__(self) -> None:
        self.records: list[Any] = []

    def add(self, record: Any) -> None:
        self.records.append(record)


def runner(tmp_path: Path, engine: FakeEngine, outbox: FakeOutbox | None,
           seen: list[tuple[Decision, Decision]]) -> tuple[PostCheckRunner, PostCheckQueue]:
    q = PostCheckQueue(tmp_path / "pc.sqlite3", CIPHER)
    r = PostCheckRunner(q, engine, department="dept", outbox=outbox,  # type: ignore[arg-type]
                        on_post_check=lambda a, b: seen.append((a, b)), wake=lambda: None)
    return r, q


def test_every_post_check_is_recorded_and_a_change_is_called_back(tmp_path: Path) -> None:
    seen: list[tuple[Decision, Decision]] = []
    outbox = FakeOutbox()
    r, q = runner(tmp_path, FakeEngine(Outcome.DENY), outbox, seen)
    q.add(degraded(decision_id="a"))
    q.add(degraded(decision_id="b"))
    assert r.run() == 2
    assert q.size() == 0
    assert [str(rec.kind) for rec in outbox.records] == ["post_check", "post_check"]
    assert [(a.decision_id, b.outcome) for a, b in seen] == [("a", Outcome.DENY),
                                                           ("b", Outcome.DENY)]


def test_unchanged_post_check_is_recorded_without_a_callback(tmp_path: Path) -> None:
    seen: list[tuple[Decision, Decision]] = []
    outbox = FakeOutbox()
    r, q = runner(tmp_path, FakeEngine(Outcome.REVIEW), outbox, seen)
    q.add(degraded())
    assert r.run() == 1
    assert len(outbox.records) == 1 and seen == []


def test_a_failing_service_leaves_the_rest_queued(tmp_path: Path) -> None:
    seen: list[tuple[Decision, Decision]] = []
    r, q = runner(tmp_path, FakeEngine(Outcome.ALLOW, fail_after=1), None, seen)
    for i in range(3):
        q.add(degraded(decision_id=f"d{i}"))
    assert r.run() == 1
    assert q.size() == 2


def test_a_failing_callback_does_not_stop_the_post_checks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    q = PostCheckQueue(tmp_path / "pc.sqlite3", CIPHER)

    def boom(a: Decision, b: Decision) -> None:
        raise RuntimeError("host bug")

    r = PostCheckRunner(q, FakeEngine(Outcome.DENY), department="d",  # type: ignore[arg-type]
                        outbox=None, on_post_check=boom, wake=lambda: None)
    q.add(degraded(decision_id="x"))
    q.add(degraded(decision_id="y"))
    assert r.run() == 2
    assert "on_post_check callback failed" in caplog.text
    assert PERSON not in caplog.text
