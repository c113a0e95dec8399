"""The post-check queue (补查): durable, encrypted at rest, de-duplicated, claimed with a
lease; the runner works only in the follower process, re-checks queued decisions, records
every result and calls back on a change or a hit — once per degraded decision, however
many processes share the data directory."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
from pathlib import Path

import pytest

from credit_check._crypto import FieldCipher
from credit_check._exceptions import ServiceUnavailable
from credit_check._models import CST, Decision, Outcome, Subject, Transaction
from credit_check._postcheck import PostCheckQueue, PostCheckRunner
from credit_check._roles import FOLLOWER_LOCK, RoleLock
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
    [(seq, d)] = again.claim()
    assert d.subject.id == PERSON and d.degraded
    assert again.claim() == []  # leased to us meanwhile
    again.attempted(seq)
    [(seq, _)] = again.claim()  # given back
    again.done(seq)
    assert again.size() == 0
    again.close()


def test_a_row_that_does_not_decrypt_is_set_aside_loudly_and_blocks_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "pc.sqlite3"
    PostCheckQueue(path, FieldCipher(b"q" * 32)).add(degraded(decision_id="old-key"))
    q = PostCheckQueue(path, CIPHER)
    q.add(degraded(decision_id="current-key"))
    [(_, found)] = q.claim()
    assert found.decision_id == "current-key"
    assert q.set_aside_count() == 1 and q.size() == 1
    assert "cannot be decrypted" in caplog.text and PERSON not in caplog.text


class Recheck:
    def __init__(self, outcome: Outcome, fail_after: int | None = None) -> None:
        self.outcome = outcome
        self.fail_after = fail_after
        self.calls = 0

    def __call__(self, original: Decision) -> Decision:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise ServiceUnavailable("down again")
        return Decision(decision_id=f"new{self.calls}", outcome=self.outcome,
                        subject=original.subject, transaction=original.transaction,
                        decided_at=NOW)


def runner(tmp_path: Path, recheck: Recheck, records: list[Decision] | None,
           seen: list[tuple[Decision, Decision]]) -> tuple[PostCheckRunner, PostCheckQueue]:
    q = PostCheckQueue(tmp_path / "pc.sqlite3", CIPHER)
    record = (lambda a, b: records.append(b)) if records is not None else None
    r = PostCheckRunner(q, recheck=recheck, record=record,
                        role=RoleLock(tmp_path / FOLLOWER_LOCK),
                        on_post_check=lambda a, b: seen.append((a, b)))
    return r, q


def test_every_post_check_is_recorded_and_a_change_is_called_back(tmp_path: Path) -> None:
    seen: list[tuple[Decision, Decision]] = []
    records: list[Decision] = []
    r, q = runner(tmp_path, Recheck(Outcome.DENY), records, seen)
    q.add(degraded(decision_id="a"))
    q.add(degraded(decision_id="b"))
    assert r.run() == 2
    assert q.size() == 0 and len(records) == 2
    assert [(a.decision_id, b.outcome) for a, b in seen] == [("a", Outcome.DENY),
                                                           ("b", Outcome.DENY)]


def test_unchanged_post_check_is_recorded_without_a_callback(tmp_path: Path) -> None:
    seen: list[tuple[Decision, Decision]] = []
    records: list[Decision] = []
    r, q = runner(tmp_path, Recheck(Outcome.REVIEW), records, seen)
    q.add(degraded())
    assert r.run() == 1
    assert len(records) == 1 and seen == []


def test_a_failing_service_leaves_the_rest_queued_and_due(tmp_path: Path) -> None:
    seen: list[tuple[Decision, Decision]] = []
    r, q = runner(tmp_path, Recheck(Outcome.ALLOW, fail_after=1), None, seen)
    for i in range(3):
        q.add(degraded(decision_id=f"d{i}"))
    assert r.run() == 1
    assert q.size() == 2
    assert len(q.claim()) == 2  # given back, not left leased


def test_a_failing_callback_does_not_stop_the_post_checks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    q = PostCheckQueue(tmp_path / "pc.sqlite3", CIPHER)

    def boom(a: Decision, b: Decision) -> None:
        raise RuntimeError("host bug")

    r = PostCheckRunner(q, recheck=Recheck(Outcome.DENY), record=None,
                        role=RoleLock(tmp_path / FOLLOWER_LOCK), on_post_check=boom)
    q.add(degraded(decision_id="x"))
    q.add(degraded(decision_id="y"))
    assert r.run() == 2
    assert "on_post_check callback failed" in caplog.text
    assert PERSON not in caplog.text


def test_only_the_follower_process_post_checks(tmp_path: Path) -> None:
    role = RoleLock(tmp_path / FOLLOWER_LOCK)
    assert role.try_acquire()  # this process is the follower
    seen: list[tuple[Decision, Decision]] = []
    records: list[Decision] = []
    r, q = runner(tmp_path, Recheck(Outcome.DENY), records, seen)  # another lock object
    q.add(degraded())
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: not the follower, so it must not run
        os._exit(r.run())
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert q.size() == 1
    role.release()
    assert r.run() == 1 and len(records) == 1


def _follower(path: str, out: str, barrier: multiprocessing.synchronize.Barrier) -> None:
    # A process of the shared data directory: post-checks whatever it may, appending each
    # post-checked decision id (and each callback) to its own file.
    directory = Path(path)
    q = PostCheckQueue(directory / "pc.sqlite3", CIPHER)
    with open(out, "a") as fh:
        r = PostCheckRunner(
            q, recheck=Recheck(Outcome.DENY),
            record=lambda a, b: (fh.write(f"record {a.decision_id}\n"), fh.flush()),
            role=RoleLock(directory / FOLLOWER_LOCK),
            on_post_check=lambda a, b: (fh.write(f"callback {a.decision_id}\n"), fh.flush()))
        barrier.wait()
        for _ in range(20):
            r.run(batch=7)


def test_two_processes_post_check_each_degraded_decision_once(tmp_path: Path) -> None:
    q = PostCheckQueue(tmp_path / "pc.sqlite3", CIPHER)
    for i in range(120):
        q.add(degraded(decision_id=f"outage-{i}"))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    outs = [tmp_path / f"out{k}.txt" for k in range(3)]
    procs = [ctx.Process(target=_follower, args=(str(tmp_path), str(o), barrier))
             for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    lines = [line for o in outs if o.exists() for line in o.read_text().split("\n") if line]
    records = sorted(line for line in lines if line.startswith("record"))
    callbacks = sorted(line for line in lines if line.startswith("callback"))
    assert records == sorted(f"record outage-{i}" for i in range(120))
    assert callbacks == sorted(f"callback outage-{i}" for i in range(120))
    assert q.size() == 0


@pytest.mark.filterwarnings("ignore::credit_check.PilotCodeWarning")
def test_a_decision_on_a_pilot_code_is_post_checked_after_a_reload(tmp_path: Path) -> None:
    from credit_check._ids import uscc_check_char

    body = "91350100MA01234A7"  # a pilot-period code: its check character fails
    good = uscc_check_char(body)
    pilot = body + ("0" if good != "0" else "1")
    decision = fallback_decision(
        subject=Subject.organization(pilot, allow=[pilot]),
        transaction=Transaction(scenario="subsidy"), outcome=Outcome.REVIEW, now=NOW,
        decision_id="pilot", catalog_version="1")
    PostCheckQueue(tmp_path / "pc.sqlite3", CIPHER, (pilot,)).add(decision)
    [(_, loaded)] = PostCheckQueue(tmp_path / "pc.sqlite3", CIPHER, (pilot,)).claim()
    assert loaded.subject.id == pilot
