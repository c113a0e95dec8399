"""The outbox of a data directory: a record is on disk when the write returns, imported into
the store exactly once, encrypted at rest, readable back by decision and case before and
after import, bounded, and shared by forked processes."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

import pytest
from _outbox_child import (
    API_KEY,
    CIPHER_KEY,
    ORG,
    ORG_NAME,
    PERSON,
    PERSON_NAME,
    import_all,
    import_new,
    make_decision,
    make_outbox,
    write,
)

from credit_check._crypto import FieldCipher, feedback_key, record_hmac
from credit_check._exceptions import ConfigurationError, OutboxError
from credit_check._feedback import decision_record, outcome_record, record_id_for
from credit_check._models import CST, FeedbackKind
from credit_check._outbox import Outbox
from credit_check._outbox._journal import read_frames


def test_a_record_is_in_the_journal_when_the_write_returns(tmp_path: Path) -> None:
    with make_outbox(tmp_path) as outbox:
        decision = make_decision()
        outbox.write_decision(decision, "d")
        # Read as another process would: the file's bytes, with no sender running.
        frames = [f for p in (tmp_path / "journal").iterdir() for f in read_frames(p)]
        assert len(frames) == 1
        # And the Outbox reads it back before any import.
        record = outbox.decision(decision.decision_id)
    assert record is not None and record.outcome is decision.outcome
    assert record.record_id == record_id_for("decision", decision.decision_id)


def test_import_makes_the_models_record_with_its_hmac(tmp_path: Path) -> None:
    with make_outbox(tmp_path) as outbox:
        decision = make_decision()
        outbox.write_decision(decision, "d")
        [claimed] = import_all(outbox)
        stored = outbox.decision(decision.decision_id)
    expected = decision_record(decision, department="d").model_dump(mode="json")
    expected["hmac"] = record_hmac(feedback_key(API_KEY), expected)
    assert claimed.body == expected
    assert stored is not None and stored.model_dump(mode="json") == expected


def test_each_record_is_imported_once_and_finished_journals_are_deleted(
        tmp_path: Path) -> None:
    outbox = make_outbox(tmp_path)
    ids = [write(outbox, i) for i in range(30)]
    first = import_all(outbox)
    assert [c.record_id for c in first] == ids
    assert import_new(outbox) == 0  # nothing new: nothing twice
    assert len(list((tmp_path / "journal").iterdir())) == 1  # still ours, still open
    outbox.close()
    again = make_outbox(tmp_path)
    assert import_new(again) == 0
    assert list((tmp_path / "journal").iterdir()) == []  # its writer is gone: deleted
    assert again.store.pending_count() == 30
    again.close()


def test_no_identifier_or_name_is_stored_in_clear(tmp_path: Path) -> None:
    with make_outbox(tmp_path) as outbox:
        for i in range(40):
            d = make_decision(i, person=i % 2 == 0)
            outbox.write_decision(d, "d")
            record = decision_record(d, department="d")
            outbox.write(outcome_record(record, result="rejected", note=f"{ORG_NAME} ok",
                                        operator=None, now=dt.datetime.now(CST)))
        import_all(outbox)
        for i in range(10):  # some left in the journal, not yet imported
            outbox.write_decision(make_decision(i), "d")
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        raw = b"".join(p.read_bytes() for p in files)
    assert any(p.name.endswith("-wal") for p in files) and any(
        p.suffix == ".jnl" for p in files)
    for secret in (PERSON, ORG, PERSON_NAME, ORG_NAME):
        assert secret.encode() not in raw, secret


def test_records_are_readable_by_decision_and_case_before_and_after_import(
        tmp_path: Path) -> None:
    with make_outbox(tmp_path) as outbox:
        decisions = [make_decision(i, case_id="CASE-9") for i in range(3)]
        outbox.write_decision(decisions[0], "d")
        outbox.write_decision(decisions[1], "d")
        import_all(outbox)
        outbox.write_decision(decisions[2], "d")  # this one stays in the journal
        trail = outbox.for_case("CASE-9")
        assert [r.decision_id for r in trail] == [d.decision_id for d in decisions]
        assert all(r.kind is FeedbackKind.DECISION for r in trail)
        assert outbox.decision(decisions[2].decision_id) is not None
        assert outbox.decision("no-such-decision") is None
        assert outbox.for_case("CASE-OTHER") == []


def test_blobs_cannot_be_swapped_between_rows(tmp_path: Path) -> None:
    import sqlite3

    with make_outbox(tmp_path) as outbox:
        a, b = make_decision(1), make_decision(2)
        outbox.write_decision(a, "d")
        outbox.write_decision(b, "d")
        import_all(outbox)
        conn = sqlite3.connect(tmp_path / "outbox.sqlite3")
        blobs = conn.execute("SELECT body FROM records ORDER BY seq").fetchall()
        conn.execute("UPDATE records SET body = ? WHERE seq = 1", blobs[1])
        conn.commit()
        conn.close()
        with pytest.raises(OutboxError, match="cannot be decrypted"):
            outbox.decision(a.decision_id)


def test_a_record_over_a_field_limit_is_refused_with_the_decision(tmp_path: Path) -> None:
    with make_outbox(tmp_path) as outbox:
        decision = make_decision(person=False).model_copy(
            update={"subject": make_decision(person=False).subject.model_copy(
                update={"name": "名" * 513})})
        with pytest.raises(OutboxError, match=r"subject\.name") as caught:
            outbox.write_decision(decision, "d")
    assert caught.value.decision is decision


def test_a_full_outbox_still_writes_then_refuses_at_its_hard_bound(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with make_outbox(tmp_path, max_pending=3) as outbox:
        outbox.write_decision(make_decision(0), "d")
        import_all(outbox)
        # The sender publishes the store's pending count; writers read it once a second.
        (tmp_path / "outbox.state").write_text('{"pending": 4}')
        outbox._estimate_at = 0.0
        outbox.write_decision(make_decision(1), "d")  # full: written, with a warning
        assert "outbox is full" in caplog.text
        (tmp_path / "outbox.state").write_text('{"pending": 6}')
        outbox._estimate_at = 0.0
        decision = make_decision(7)
        with pytest.raises(OutboxError, match="hard bound") as caught:
            outbox.write_decision(decision, "d")
        assert caught.value.decision is decision


def test_bad_settings_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="synchronous"):
        make_outbox(tmp_path, synchronous="sometimes")
    with pytest.raises(ConfigurationError, match="max_pending"):
        make_outbox(tmp_path, max_pending=0)


def test_the_files_are_private(tmp_path: Path) -> None:
    with make_outbox(tmp_path) as outbox:
        outbox.write_decision(make_decision(), "d")
        import_all(outbox)
        outbox.write_decision(make_decision(1), "d")
    for path in [tmp_path / "outbox.sqlite3", *(tmp_path / "journal").iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, path
    assert (tmp_path / "journal").stat().st_mode & 0o077 == 0


def test_forked_processes_write_journals_of_their_own_and_every_record_lands_once(
        tmp_path: Path) -> None:
    outbox = make_outbox(tmp_path)
    ids = [write(outbox, 0)]
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                for i in range(200):
                    write(outbox, i)
                outbox.close(0.0)
            except BaseException:
                code = 1
            os._exit(code)
        pids.append(pid)
    ids += [write(outbox, i) for i in range(200)]
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    assert codes == [0, 0]
    assert len(list((tmp_path / "journal").iterdir())) == 3
    claimed = import_all(outbox)
    outbox.close()
    assert len(claimed) == 601 and len({c.record_id for c in claimed}) == 601
    assert set(ids) <= {c.record_id for c in claimed}
    # The children's journals are finished (their writers gone): imported and deleted.
    assert len(list((tmp_path / "journal").iterdir())) == 1


def test_concurrent_writes_from_threads_are_never_torn_or_lost(tmp_path: Path) -> None:
    with make_outbox(tmp_path) as outbox:
        written: list[list[str]] = [[] for _ in range(8)]

        def work(k: int) -> None:
            for i in range(200):
                written[k].append(write(outbox, i))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stored = [c.record_id for c in import_all(outbox)]
    assert sorted(stored) == sorted(i for ids in written for i in ids)
    for ids in written:  # each thread's records keep their order of creation
        positions = [stored.index(i) for i in ids]
        assert positions == sorted(positions)


def test_the_helper_key_matches_an_outbox_built_by_hand(tmp_path: Path) -> None:
    # The tests' helper and an outbox built by hand agree, so fixtures stay honest.
    with Outbox(tmp_path, cipher=FieldCipher(CIPHER_KEY),
                hmac_key=feedback_key(API_KEY)) as outbox:
        decision = make_decision()
        outbox.write_decision(decision, "d")
    with make_outbox(tmp_path) as outbox:
        assert outbox.decision(decision.decision_id) is not None


def test_prune_deletes_only_delivered_records_past_the_retention_period(
        tmp_path: Path) -> None:
    import time

    with make_outbox(tmp_path, retention_days=1.0) as outbox:
        for i in range(30):
            write(outbox, i)
        claimed = import_all(outbox)
        outbox.store.acknowledge([c.seq for c in claimed[:20]])
        outbox.store.dead_letter([(claimed[20].seq, "refused")])
        assert outbox.store.prune(chunk=7) == 0  # delivered just now: kept
        with outbox.store._use("age the records") as conn:
            conn.execute("UPDATE records SET added_at = ?, delivered_at = ? WHERE seq <= ?",
                         (time.time() - 2 * 86400, time.time() - 2 * 86400,
                          claimed[24].seq))
        assert outbox.store.prune(chunk=7) == 20
        counts = outbox.store.counts()
    assert (counts["delivered"], counts["dead"], counts["pending"]) == (0, 1, 9)


def test_a_journal_comes_into_view_only_once_its_writer_holds_its_lock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A reader that found a journal unlocked would take its writer for gone and delete it.
    import fcntl

    from credit_check._outbox import _journal

    visible_unlocked: list[list[str]] = []
    real_flock = fcntl.flock

    def watching(fd: int, op: int) -> None:
        if op == fcntl.LOCK_EX:  # the writer taking its lock: what can a reader see now?
            visible_unlocked.append([p.name for p in _journal.journals(tmp_path / "journal")])
        real_flock(fd, op)

    monkeypatch.setattr(_journal.fcntl, "flock", watching)
    with make_outbox(tmp_path) as outbox:
        write(outbox, 0)
    assert visible_unlocked == [[]]
