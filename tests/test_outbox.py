"""The outbox store: commit before return, encryption at rest, audit, leases, limits, fork."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
from pathlib import Path

import pytest
from _outbox_child import (
    API_KEY,
    CIPHER_KEY,
    ORG,
    PERSON,
    PERSON_NAME,
    make_decision,
    make_outbox,
)

from credit_check._crypto import FieldCipher, feedback_key, record_hmac
from credit_check._exceptions import ConfigurationError, OutboxError
from credit_check._feedback import decision_record, outcome_record, post_check_record
from credit_check._models import CST, FeedbackKind
from credit_check._outbox import Outbox


def test_add_commits_before_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    with make_outbox(path) as outbox:
        record = outbox.add(decision_record(make_decision(), department="d"))
        # A separate connection (as another process would) sees the committed row.
        other = sqlite3.connect(path)
        try:
            rows = other.execute("SELECT record_id, kind, state FROM records").fetchall()
        finally:
            other.close()
    assert rows == [(record.record_id, "decision", 0)]


def test_add_signs_the_record_with_the_feedback_key(tmp_path: Path) -> None:
    with make_outbox(tmp_path / "o.db") as outbox:
        record = outbox.add(decision_record(make_decision(), department="d"))
        stored = outbox.decision(record.decision_id)
    assert record.hmac == record_hmac(feedback_key(API_KEY), record.model_dump(mode="json"))
    assert stored == record


def test_no_identifier_or_name_is_stored_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with make_outbox(path) as outbox:
        for i in range(50):
            d = make_decision(i, person=i % 2 == 0)
            original = outbox.add(decision_record(d, department="d"))
            outbox.add(outcome_record(original, result="rejected", note=None, operator=None,
                                      now=dt.datetime.now(CST)))
        files = [p for p in tmp_path.iterdir() if p.name.startswith("o.db")]
        raw = b"".join(p.read_bytes() for p in files)
        assert any(p.name.endswith("-wal") for p in files)
    for secret in (PERSON, PERSON[:6] + PERSON[-4:], PERSON_NAME, "示例科技有限公司", ORG):
        assert secret.encode() not in raw, secret


def test_blobs_cannot_be_swapped_between_rows(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with make_outbox(path) as outbox:
        a = outbox.add(decision_record(make_decision(), department="d"))
        b = outbox.add(decision_record(make_decision(), department="d"))
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            body_b = conn.execute("SELECT body FROM records WHERE record_id = ?",
                                  (b.record_id,)).fetchone()[0]
            conn.execute("UPDATE records SET body = ? WHERE record_id = ?", (body_b, a.record_id))
        finally:
            conn.close()
        with pytest.raises(OutboxError, match="cannot be decrypted"):
            outbox.decision(a.decision_id)


def test_a_different_encryption_key_is_an_outbox_error(tmp_path: Path) -> None:
    with make_outbox(tmp_path / "o.db") as outbox:
        r = outbox.add(decision_record(make_decision(), department="d"))
    other = Outbox(tmp_path / "o.db", cipher=FieldCipher(bytes(32)), hmac_key=b"k")
    with other, pytest.raises(OutboxError, match="encryption key"):
        other.decision(r.decision_id)


def test_for_case_lists_every_record_of_the_case_in_order(tmp_path: Path) -> None:
    with make_outbox(tmp_path / "o.db") as outbox:
        first = outbox.add(decision_record(make_decision(1, case_id="A"), department="财政局"))
        outbox.add(decision_record(make_decision(2, case_id="B"), department="财政局"))
        second = make_decision(3, case_id="A")
        outbox.add(decision_record(second, department="财政局"))
        outbox.add(outcome_record(first, result="rejected", note="n", operator="o",
                                  now=dt.datetime.now(CST)))
        outbox.add(post_check_record(second, previous=second, department="财政局",
                                     original_decision_id=second.decision_id))
        audit = outbox.for_case("A")
        assert outbox.for_case("nobody") == []
        assert outbox.decision("unknown") is None
    assert [r.kind for r in audit] == [FeedbackKind.DECISION, FeedbackKind.DECISION,
                                       FeedbackKind.OUTCOME, FeedbackKind.POST_CHECK]
    assert all(r.transaction.case_id == "A" and r.department == "财政局" for r in audit)
    assert audit[0].operator == "clerk-7" and audit[0].catalog_version == "2026.1"


def test_full_outbox_still_writes_then_refuses_at_the_hard_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "credit_check")
    with make_outbox(tmp_path / "o.db", max_pending=5) as outbox:
        for i in range(10):
            outbox.add(decision_record(make_decision(i), department="d"))
        status = outbox.status()
        with pytest.raises(OutboxError, match="hard limit"):
            outbox.add(decision_record(make_decision(), department="d"))
    assert status.pending == 10 and status.full
    warnings = [r for r in caplog.records if "outbox is full" in r.getMessage()]
    assert len(warnings) == 1  # rate-limited


def test_a_claimed_record_is_sent_as_stored_with_its_hmac(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with make_outbox(path) as outbox:
        records = [outbox.add(decision_record(make_decision(i), department="d"))
                   for i in range(2)]
        sent = outbox.claim(2, lease=0, owner="me")
        # The JSON text is the record's canonical form, the HMAC put back, no re-encoding.
        assert [c.body for c in sent] == [r.model_dump(mode="json") for r in records]
        assert all(record_hmac(feedback_key(API_KEY), {**c.body, "hmac": ""}) == c.body["hmac"]
                   for c in sent)
        # A damaged HMAC column (not hex) still gives well-formed JSON, carrying it as is.
        with sqlite3.connect(path) as other:
            other.execute("UPDATE records SET hmac = ? WHERE seq = 1", ('x"}, "evil": 1',))
        other.close()
        again = outbox.claim(1, lease=0, owner="me")
        assert again[0].body["hmac"] == 'x"}, "evil": 1' and "evil" not in again[0].body


def test_claims_do_not_overlap_and_leases_of_dead_processes_are_freed(tmp_path: Path) -> None:
    with make_outbox(tmp_path / "o.db") as outbox:
        for i in range(5):
            outbox.add(decision_record(make_decision(i), department="d"))
        a = outbox.claim(3, lease=60, owner="999999999:a")  # a pid that does not exist
        b = outbox.claim(3, lease=60, owner=f"{os.getpid()}:b")
        assert [c.seq for c in a] == [1, 2, 3] and [c.seq for c in b] == [4, 5]
        assert a[0].body["subject"]["id"] == PERSON
        assert outbox.claim(3, lease=60, owner="x") == []
        assert outbox.release_dead_owners() == 1
        assert [c.seq for c in outbox.claim(5, lease=60, owner="c")] == [1, 2, 3]


def test_acknowledged_and_dead_records_leave_the_pending_count(tmp_path: Path) -> None:
    with make_outbox(tmp_path / "o.db", retention_days=0) as outbox:
        for i in range(4):
            outbox.add(decision_record(make_decision(i), department="d"))
        claimed = outbox.claim(4, lease=60, owner="me")
        outbox.acknowledge([claimed[0].seq, claimed[1].seq])
        outbox.dead_letter([(claimed[2].seq, "hmac does not verify")])
        outbox.release([claimed[3].seq], delay=3600)
        status = outbox.status()
        assert outbox.claim(4, lease=60, owner="me") == []  # waiting for its retry time
        outbox.checkpoint()
        assert outbox.prune() == 2
        after = outbox.status()
    assert (status.pending, status.delivered, status.dead_lettered) == (1, 2, 1)
    assert status.dead_reasons == (("hmac does not verify", 1),)
    assert status.oldest_pending_age is not None and not status.full
    assert (after.delivered, after.dead_lettered, after.pending) == (0, 1, 1)


def test_sqlite_errors_become_outbox_errors(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(OutboxError, match="cannot open"):
        make_outbox(tmp_path / "dir.db")
    outbox = make_outbox(tmp_path / "o.db")
    outbox.close()
    with pytest.raises(OutboxError, match="closed"):
        outbox.add(decision_record(make_decision(), department="d"))


def test_bad_settings_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="synchronous"):
        make_outbox(tmp_path / "o.db", synchronous="off")
    with pytest.raises(ConfigurationError, match="max_pending"):
        make_outbox(tmp_path / "o.db", max_pending=0)


def test_the_file_is_private(tmp_path: Path) -> None:
    with make_outbox(tmp_path / "o.db", synchronous="full") as outbox:
        outbox.add(decision_record(make_decision(), department="d"))
    assert (tmp_path / "o.db").stat().st_mode & 0o077 == 0


def test_forked_processes_share_one_file(tmp_path: Path) -> None:
    """Two forked workers and the parent add concurrently; every record lands once."""
    path = tmp_path / "o.db"
    outbox = make_outbox(path)
    outbox.add(decision_record(make_decision(), department="parent"))
    pids = []
    for worker in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                for i in range(200):
                    outbox.add(decision_record(make_decision(i), department=f"w{worker}"))
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    for i in range(200):
        outbox.add(decision_record(make_decision(i), department="parent"))
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    assert codes == [0, 0]
    claimed = outbox.claim(1000, lease=60, owner="me")
    outbox.close()
    assert len(claimed) == 601
    assert len({c.record_id for c in claimed}) == 601
    assert sorted(c.seq for c in claimed) == [c.seq for c in claimed]


def test_cipher_key_helper_matches_the_store(tmp_path: Path) -> None:
    # The tests' helper and a store built by hand agree, so fixtures stay honest.
    with Outbox(tmp_path / "o.db", cipher=FieldCipher(CIPHER_KEY),
                hmac_key=feedback_key(API_KEY)) as outbox:
        r = outbox.add(decision_record(make_decision(), department="d"))
    with make_outbox(tmp_path / "o.db") as outbox:
        assert outbox.decision(r.decision_id) == r


def test_concurrent_adds_are_group_committed_and_none_is_lost(tmp_path: Path) -> None:
    import threading

    with make_outbox(tmp_path / "o.db") as outbox:
        added: list[list[str]] = [[] for _ in range(8)]

        def work(k: int) -> None:
            for i in range(200):
                added[k].append(outbox.add(decision_record(make_decision(i), department="d"))
                                .record_id)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stored = [c.record_id for c in outbox.claim(5000, lease=1, owner="me")]
    assert sorted(stored) == sorted(i for ids in added for i in ids)
    for ids in added:  # each thread's records keep their order of creation
        positions = [stored.index(i) for i in ids]
        assert positions == sorted(positions)
