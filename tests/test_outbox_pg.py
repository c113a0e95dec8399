"""The SDK's outbox and post-check queue in PostgreSQL (CREDIT_CHECK_OUTBOX_URL): decisions
committed before check() returns, sealed as the local outbox seals them, readable and
deliverable from any host; a failed INSERT closes the gate with the decision; outcome
records join the caller's transaction; one sender and one follower across processes."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from _postgres import PASSWORD, Cluster, free_port

from credit_check import Checker, ConfigurationError, Outcome, Subject, Transaction
from credit_check._exceptions import OutboxError
from credit_check._models import FeedbackKind
from credit_check._pg import AdvisoryRole, Database
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE

KEY = base64.b64encode(bytes(range(32))).decode()
MakeChecker = Callable[..., Checker]
LISTED_ORG = SHOWCASE["court_defaulter_org"]
PERSON = SHOWCASE["court_defaulter_rep"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    server = SandboxServer(tmp_path_factory.mktemp("sandbox") / "s.db", demo=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_checker(sandbox: SandboxServer, pg_url: str, tmp_path: Path
                 ) -> Iterator[MakeChecker]:
    made: list[Checker] = []

    def make(host: str = "a", **options: Any) -> Checker:
        settings: dict[str, Any] = {
            "base_url": sandbox.base_url, "api_key": sandbox.demo_key,
            "department": "财政局", "data_dir": tmp_path / host, "encryption_key": KEY,
            "outbox_url": pg_url, "sync_interval": 3600.0, **options}
        checker = Checker(**settings)
        made.append(checker)
        assert checker.wait_ready(30)
        return checker

    yield make
    for checker in made:
        checker.close(timeout=1.0)


def outbox_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT record_id, kind, decision_id, state, body FROM "
                            "credit_check_outbox ORDER BY seq").fetchall()


def received(sandbox: SandboxServer) -> list[dict[str, Any]]:
    import requests

    resp = requests.get(sandbox.base_url + "/v1/admin/feedback", timeout=30,
                        headers={"Authorization": f"Bearer {sandbox.admin_key}"})
    records: list[dict[str, Any]] = resp.json()["records"]
    return records


def test_each_decision_is_committed_sealed_before_check_returns(
        make_checker: MakeChecker, pg_url: str, sandbox: SandboxServer) -> None:
    checker = make_checker(sender=False)
    d = checker.check(Subject.person(PERSON, "赵某某"),
                      Transaction(scenario="procurement", case_id="PG-1"))
    rows = outbox_rows(pg_url)  # another connection sees it: it was committed
    assert [(r[1], r[2], r[3]) for r in rows] == [("decision", d.decision_id, 0)]
    body = bytes(rows[0][4])
    assert PERSON.encode() not in body and "赵某某".encode() not in body
    with psycopg.connect(pg_url) as conn:
        dump = "".join(str(r) for r in conn.execute(
            "SELECT * FROM credit_check_outbox").fetchall())
    assert PERSON not in dump and "赵某某" not in dump
    # Read and reported from another host: the record is the same as the local outbox's.
    other = make_checker("b", sender=False)
    outcome_id = other.report(d.decision_id, result="rejected", note="refused")
    # The follower may have opened the case's follow-up when its first sync ended after
    # the check: a case_opened record (docs/lifecycle.md), left aside here.
    everything = other.checks_for_case("PG-1")
    opened = sum(r.kind is FeedbackKind.CASE_OPENED for r in everything)
    trail = [r for r in everything if r.kind is not FeedbackKind.CASE_OPENED]
    assert [r.kind for r in trail] == [FeedbackKind.DECISION, FeedbackKind.OUTCOME]
    assert trail[0].subject.id == PERSON and trail[1].record_id == outcome_id
    assert checker.status().outbox_pending == 2 + opened
    # Any host's sender delivers every host's records, once.
    deliverer = make_checker("c")
    assert deliverer._outbox is not None and deliverer._outbox.sender is not None
    assert deliverer._outbox.sender.flush(30)
    got = [r for r in received(sandbox) if r["decision_id"] == d.decision_id]
    assert sorted(r["kind"] for r in got if r["kind"] != "case_opened") == ["decision",
                                                                             "outcome"]
    assert checker.status().outbox_pending == 0


def test_a_failed_insert_closes_the_gate_with_the_decision(
        make_checker: MakeChecker, pg_cluster: Cluster, pg_url: str) -> None:
    checker = make_checker(sender=False)
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_cluster.url(), autocommit=True) as su:
        su.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        su.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                   "%s", (name,))
        try:
            with pytest.raises(OutboxError) as caught:
                checker.check(LISTED_ORG, Transaction(scenario="procurement", case_id="PG-2"))
        finally:
            su.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
    decision = caught.value.decision
    assert decision is not None and decision.outcome is Outcome.DENY  # still enforced
    assert "could not be recorded" in str(caught.value) and PASSWORD not in str(caught.value)
    assert all(r[2] != decision.decision_id for r in outbox_rows(pg_url))
    # Back: the next check is recorded (the pool reconnects).
    deadline = time.monotonic() + 30
    while True:
        try:
            later = checker.check(LISTED_ORG, Transaction(scenario="procurement"))
            break
        except OutboxError:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert any(r[2] == later.decision_id for r in outbox_rows(pg_url))


def test_an_outcome_reported_in_the_callers_transaction_commits_or_rolls_back_with_it(
        make_checker: MakeChecker, pg_url: str) -> None:
    checker = make_checker(sender=False)
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE cases (case_id TEXT PRIMARY KEY, status TEXT)")
        conn.execute("INSERT INTO cases VALUES ('PG-3', 'open')")
        conn.commit()
        d = checker.check(LISTED_ORG, Transaction(scenario="procurement", case_id="PG-3"))

        conn.execute("UPDATE cases SET status = 'refused' WHERE case_id = 'PG-3'")
        # A check made while the caller's transaction is open commits on its own.
        inner = checker.check(LISTED_ORG, Transaction(scenario="procurement", case_id="PG-3"))
        rolled = checker.report(d.decision_id, result="rejected", connection=conn)
        conn.rollback()
        kinds = [(r[1], r[0]) for r in outbox_rows(pg_url)]
        assert ("outcome", rolled) not in kinds
        # (The follower may have opened the case's follow-up meanwhile: case_opened.)
        assert [k for k, _ in kinds if k != "case_opened"] == ["decision", "decision"]
        assert any(r[2] == inner.decision_id for r in outbox_rows(pg_url))

        conn.execute("UPDATE cases SET status = 'refused' WHERE case_id = 'PG-3'")
        kept = checker.report(d.decision_id, result="rejected", connection=conn)
        assert ("outcome", kept) not in [(r[1], r[0]) for r in outbox_rows(pg_url)]
        conn.commit()
    outcomes = [r for r in outbox_rows(pg_url) if r[1] == "outcome"]
    assert [r[0] for r in outcomes] == [kept]
    assert [r.kind for r in checker.checks_for_case("PG-3")].count(FeedbackKind.OUTCOME) == 1


DJANGO_CHILD = """
import json, sys
from urllib.parse import urlsplit
import django
from django.conf import settings
url = urlsplit(sys.argv[1])
settings.configure(DATABASES={"default": {
    "ENGINE": "django.db.backends.postgresql", "NAME": url.path[1:], "USER": url.username,
    "PASSWORD": url.password, "HOST": url.hostname, "PORT": url.port}})
django.setup()
from django.db import connection, transaction
from credit_check import Checker, Transaction
checker = Checker(base_url=sys.argv[2], api_key=sys.argv[3], department="财政局",
                  data_dir=sys.argv[4], encryption_key=sys.argv[5], outbox_url=sys.argv[1],
                  sender=False)
checker.wait_ready(30)
d = checker.check(sys.argv[6], Transaction(scenario="procurement", case_id="DJ-1"))
ids = {}
class Undo(Exception):
    pass
try:
    with transaction.atomic():
        ids["rolled_back"] = checker.report(d.decision_id, "rejected", connection=connection)
        raise Undo
except Undo:
    pass
with transaction.atomic():
    ids["committed"] = checker.report(d.decision_id, "rejected", connection=connection)
checker.close(timeout=0)
print(json.dumps(ids))
"""


def test_django_on_psycopg_3_reports_inside_its_atomic_block(
        sandbox: SandboxServer, pg_url: str, tmp_path: Path) -> None:
    pytest.importorskip("django")
    result = subprocess.run(
        [sys.executable, "-c", DJANGO_CHILD, pg_url, sandbox.base_url, sandbox.demo_key,
         str(tmp_path / "dj"), KEY, LISTED_ORG], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    ids = json.loads(result.stdout)
    outcomes = [r[0] for r in outbox_rows(pg_url) if r[1] == "outcome"]
    assert outcomes == [ids["committed"]] and ids["rolled_back"] not in outcomes


def test_connection_with_a_local_outbox_is_a_configuration_error(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    with Checker(base_url=sandbox.base_url, api_key=sandbox.demo_key, department="财政局",
                 data_dir=tmp_path, encryption_key=KEY, sender=False) as checker:
        assert checker.wait_ready(30)
        d = checker.check(LISTED_ORG, Transaction(scenario="procurement"))
        with pytest.raises(ConfigurationError, match="CREDIT_CHECK_OUTBOX_URL"):
            checker.report(d.decision_id, result="rejected", connection=object())


def test_bad_outbox_settings_are_refused_clearly(
        sandbox: SandboxServer, pg_cluster: Cluster, pg_url: str, tmp_path: Path) -> None:
    base = {"base_url": sandbox.base_url, "api_key": sandbox.demo_key,
            "department": "财政局", "data_dir": tmp_path, "start": False}
    with pytest.raises(ConfigurationError, match="CREDIT_CHECK_ENCRYPTION_KEY: needed"):
        Checker(**base, outbox_url=pg_url)
    with pytest.raises(ConfigurationError, match="not a postgresql:// URL") as caught:
        Checker(**base, encryption_key=KEY, outbox_url=f"mysql://u:{PASSWORD}@h/x")
    assert PASSWORD not in str(caught.value)
    with pytest.raises(ConfigurationError, match="cannot connect to the outbox") as caught:
        Checker(**base, encryption_key=KEY,
                outbox_url=f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/x")
    assert PASSWORD not in str(caught.value) and "postgres:***@" in str(caught.value)
    Checker(**base, encryption_key=KEY, outbox_url=pg_url).close()
    other = base64.b64encode(bytes(32)).decode()
    with pytest.raises(ConfigurationError, match="not the key of the outbox"):
        Checker(**base, encryption_key=other, outbox_url=pg_url)


ROLE_CHILD = """
import sys, time
from credit_check._pg import AdvisoryRole, Database
role = AdvisoryRole(Database(sys.argv[1], what="test"), "credit-check/sender")
assert role.try_acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_a_role_is_held_by_one_process_and_dies_with_it(pg_url: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", ROLE_CHILD, pg_url],
                             stdout=subprocess.PIPE, text=True)
    db = Database(pg_url, what="test")
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        role = AdvisoryRole(db, "credit-check/sender")
        assert not role.try_acquire() and role.holder() is not None
        follower = AdvisoryRole(db, "credit-check/follower")
        assert follower.try_acquire()  # another role
        follower.release()
        child.kill()
        child.wait(30)
        deadline = time.monotonic() + 10
        while not role.try_acquire():
            assert time.monotonic() < deadline, "the dead holder's role was never freed"
            time.sleep(0.1)
        assert role.holder() == os.getpid()
        role.release()
        assert not role.held
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        assert child.stdout is not None
        child.stdout.close()
        db.close()


def _follower(url: str, out: str, barrier: Any) -> None:
    # A process on another "host": post-checks whatever it may, appending each
    # post-checked decision id (and each callback) to its own file.
    from test_postcheck import CIPHER, Recheck

    from credit_check._postcheck import PostCheckRunner
    from credit_check._postcheck_pg import FOLLOWER_ROLE, PgPostCheckQueue

    db = Database(url, what="test")
    q = PgPostCheckQueue(db, CIPHER)
    role = AdvisoryRole(db, FOLLOWER_ROLE)
    with open(out, "a") as fh:
        r = PostCheckRunner(
            q, recheck=Recheck(Outcome.DENY),
            record=lambda a, b: (fh.write(f"record {a.decision_id}\n"), fh.flush()),
            role=role,
            on_post_check=lambda a, b: (fh.write(f"callback {a.decision_id}\n"), fh.flush()))
        barrier.wait()
        for _ in range(20):
            r.run(batch=7)
            role.release()  # let the others take turns
    db.close()


def test_two_processes_post_check_each_degraded_decision_once(pg_url: str,
                                                             tmp_path: Path) -> None:
    import multiprocessing

    from test_postcheck import CIPHER, degraded
    from test_postcheck import PERSON as PERSON_ID

    from credit_check._outbox._pg_store import open_schema
    from credit_check._postcheck_pg import PgPostCheckQueue

    db = Database(pg_url, what="test")
    open_schema(db, CIPHER)
    q = PgPostCheckQueue(db, CIPHER)
    for i in range(120):
        q.add(degraded(decision_id=f"outage-{i}"))
    q.add(degraded(decision_id="outage-0"))  # queued once
    with psycopg.connect(pg_url) as conn:
        dump = str(conn.execute("SELECT * FROM credit_check_postcheck").fetchall())
    assert q.size() == 120 and "outage-119" in dump and PERSON_ID not in dump
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(3)
    outs = [tmp_path / f"out{k}.txt" for k in range(3)]
    procs = [ctx.Process(target=_follower, args=(pg_url, str(o), barrier)) for o in outs]
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
    assert q.size() == 0 and q.set_aside_count() == 0
    db.close()


def test_the_sidecar_sender_delivers_the_outbox_in_postgresql(
        make_checker: MakeChecker, sandbox: SandboxServer, pg_url: str,
        tmp_path: Path) -> None:
    import signal

    checker = make_checker(sender=False)
    made = [checker.check(LISTED_ORG, Transaction(scenario="procurement", case_id="SIDE"))
            for _ in range(5)]
    env = {**os.environ, "CREDIT_CHECK_OUTBOX_URL": pg_url, "CREDIT_CHECK_ENCRYPTION_KEY": KEY,
           "CREDIT_CHECK_BASE_URL": sandbox.base_url, "CREDIT_CHECK_API_KEY": sandbox.demo_key,
           "CREDIT_CHECK_DATA_DIR": str(tmp_path / "sidecar")}
    cli = [sys.executable, "-m", "credit_check._cli", "outbox"]
    sidecar = subprocess.Popen([*cli, "run"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while checker.status().outbox_pending:
            assert time.monotonic() < deadline and sidecar.poll() is None
            time.sleep(0.1)
    finally:
        sidecar.send_signal(signal.SIGTERM)
        _, err = sidecar.communicate(timeout=30)
    assert sidecar.returncode == 0, err
    assert PASSWORD not in err and "postgres:***@" in err
    ids = {r["decision_id"] for r in received(sandbox)}
    assert {d.decision_id for d in made} <= ids
    status = subprocess.run([*cli, "status", "--json"], env=env, capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["pending"] == 0 and shown["delivered"] >= 5 and PASSWORD not in status.stdout


def test_no_decision_is_recorded_from_an_event_loop(make_checker: MakeChecker,
                                                    pg_url: str) -> None:
    checker = make_checker(sender=False)
    tx = Transaction(scenario="procurement")
    # With the outbox in a database, recording is a round trip: check_local defers to a
    # worker thread (the middleware's check()) instead of blocking the loop.
    assert checker.check_local(org_id_not_listed(), tx) is None
    assert outbox_rows(pg_url) == []
    assert checker.check(org_id_not_listed(), tx).outcome is Outcome.ALLOW


def org_id_not_listed() -> str:
    from _outbox_child import org_id

    return org_id(4242)
