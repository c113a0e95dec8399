"""The outbox sender against a scripted service (``responses``): acknowledgements, backoff,
Retry-After, partial acceptance, dead letters, batch splitting, the background thread."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from _outbox_child import API_KEY, PERSON, PERSON_NAME, make_decision, make_outbox, write

from credit_check._crypto import feedback_key, record_hmac
from credit_check._feedback import decision_record
from credit_check._outbox import Outbox, Sender, clean_reason
from credit_check._server import SandboxServer
from credit_check._transport import Transport

BASE = "http://list.test"
URL = BASE + "/v1/feedback"
Handler = Callable[[list[dict[str, Any]]], tuple[int, dict[str, str], Any]]


class Service:
    """Answers POST /v1/feedback with a handler; records every batch it was sent."""

    def __init__(self, rsps: responses.RequestsMock) -> None:
        self.batches: list[list[str]] = []
        self.handler: Handler = self.accept_all
        rsps.add_callback(responses.POST, URL, callback=self._callback)

    @staticmethod
    def accept_all(records: list[dict[str, Any]]) -> tuple[int, dict[str, str], Any]:
        return 200, {}, {"accepted": [r["record_id"] for r in records], "duplicates": [],
                         "rejected": []}

    def _callback(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        records = json.loads(request.body or b"{}")["records"]
        self.batches.append([r["record_id"] for r in records])
        status, headers, body = self.handler(records)
        return status, headers, body if isinstance(body, str) else json.dumps(body)

    @property
    def sent(self) -> list[str]:
        return [i for b in self.batches for i in b]


@pytest.fixture
def service() -> Iterator[Service]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield Service(rsps)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with make_outbox(tmp_path / "data") as ob:
        yield ob


@pytest.fixture
def transport() -> Iterator[Transport]:
    t = Transport(BASE, "key", retries=0)
    yield t
    t.close()


def fill(outbox: Outbox, n: int) -> list[str]:
    return [write(outbox, i) for i in range(n)]


def sender(outbox: Outbox, transport: Transport, **kw: Any) -> Sender:
    options: dict[str, Any] = {"backoff": 0.05, "max_backoff": 0.2, "max_delay": 0.01}
    options.update(kw)
    return outbox.attach_sender(transport, **options)


def test_records_are_sent_in_order_and_never_again_once_acknowledged(
    service: Service, outbox: Outbox, transport: Transport
) -> None:
    ids = fill(outbox, 25)
    s = sender(outbox, transport, batch_size=10)
    assert s.flush(2.0)
    assert s.flush(0.1)
    s.close()
    assert [len(b) for b in service.batches] == [10, 10, 5]
    assert service.sent == ids
    assert outbox.status().delivered == 25


def test_the_sent_records_carry_the_full_signed_record(
    service: Service, outbox: Outbox, transport: Transport
) -> None:
    got: list[dict[str, Any]] = []

    def keep(records: list[dict[str, Any]]) -> tuple[int, dict[str, str], Any]:
        got.extend(records)
        return Service.accept_all(records)

    service.handler = keep
    decision = make_decision()
    outbox.write_decision(decision, "d")
    assert sender(outbox, transport).flush(2.0)
    expected = decision_record(decision, department="d").model_dump(mode="json")
    expected["hmac"] = record_hmac(feedback_key(API_KEY), expected)
    assert got == [expected]
    assert got[0]["subject"] == {"kind": "person", "id": PERSON, "name": PERSON_NAME}


def test_retry_after_of_a_429_is_honoured(
    service: Service, outbox: Outbox, transport: Transport
) -> None:
    answers: Iterator[tuple[int, dict[str, str], Any]] = iter(
        [(429, {"Retry-After": "1"}, {"title": "slow down"})])
    service.handler = lambda records: next(answers, None) or Service.accept_all(records)
    fill(outbox, 3)
    start = time.monotonic()
    assert sender(outbox, transport).flush(5.0)
    assert time.monotonic() - start >= 0.9
    assert len(service.batches) == 2


@pytest.mark.parametrize("failure", ["503", "connection refused", "malformed json",
                                     "wrong shape", "401"])
def test_a_failed_delivery_keeps_the_records_for_later(
    service: Service, outbox: Outbox, transport: Transport, failure: str
) -> None:
    answers: dict[str, tuple[int, dict[str, str], Any]] = {
        "503": (503, {}, {"title": "down"}),
        "malformed json": (200, {}, "{not json"),
        "wrong shape": (200, {}, {"accepted": "all"}),
        "401": (401, {}, {"title": "bad key"}),
    }

    def fail(records: list[dict[str, Any]]) -> tuple[int, dict[str, str], Any]:
        if failure == "connection refused":
            raise requests.ConnectionError("refused")
        return answers[failure]

    service.handler = fail
    ids = fill(outbox, 4)
    s = sender(outbox, transport)
    assert not s.flush(0.3)
    status = outbox.status()
    assert (status.pending, status.dead_lettered, status.delivered) == (4, 0, 0)
    service.handler = Service.accept_all
    assert s.flush(3.0)
    assert service.sent[-4:] == ids


def test_partial_acceptance_duplicates_and_rejections(
    service: Service, outbox: Outbox, transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "credit_check")
    first = [True]

    def partial(records: list[dict[str, Any]]) -> tuple[int, dict[str, str], Any]:
        if not first[0]:
            return Service.accept_all(records)
        first[0] = False
        ids = [r["record_id"] for r in records]
        return 200, {}, {"accepted": ids[:2], "duplicates": [ids[2]], "rejected": [
            {"record_id": ids[3], "index": 3, "reason": f"hmac does not verify for {PERSON}"},
            {"record_id": None, "index": 4, "reason": "subject.id: invalid"},
        ]}  # ids[5] is not answered at all: it must be retried

    service.handler = partial
    ids = fill(outbox, 6)
    s = sender(outbox, transport)
    assert s.flush(3.0)
    status = outbox.status()
    assert (status.delivered, status.dead_lettered, status.pending) == (4, 2, 0)
    assert service.batches[1] == [ids[5]]
    reasons = dict(status.dead_reasons)
    assert "subject.id: invalid" in reasons
    assert f"hmac does not verify for {PERSON[:6]}********{PERSON[-4:]}" in reasons
    assert PERSON not in caplog.text
    assert (s.delivered, s.dead_lettered) == (4, 2)


def test_a_whole_batch_4xx_is_split_until_the_bad_record_stands_alone(
    service: Service, outbox: Outbox, transport: Transport
) -> None:
    ids = fill(outbox, 8)
    bad = ids[5]

    def picky(records: list[dict[str, Any]]) -> tuple[int, dict[str, str], Any]:
        if any(r["record_id"] == bad for r in records):
            return 400, {"Content-Type": "application/problem+json"}, {"detail": "bad record"}
        return Service.accept_all(records)

    service.handler = picky
    s = sender(outbox, transport, batch_size=8)
    assert s.flush(3.0)
    status = outbox.status()
    assert (status.delivered, status.dead_lettered) == (7, 1)
    assert "HTTP 400" in status.dead_reasons[0][0]
    assert sorted(set(service.sent) - {bad}) == sorted(set(ids) - {bad})


def test_a_413_splits_the_batch(service: Service, outbox: Outbox, transport: Transport) -> None:
    def small(records: list[dict[str, Any]]) -> tuple[int, dict[str, str], Any]:
        if len(records) > 3:
            return 413, {}, {"detail": "too large"}
        return Service.accept_all(records)

    service.handler = small
    fill(outbox, 10)
    assert sender(outbox, transport, batch_size=10).flush(3.0)
    assert outbox.status().delivered == 10


def test_the_background_thread_sends_woken_records_and_stops_on_close(
    service: Service, outbox: Outbox, transport: Transport
) -> None:
    s = sender(outbox, transport, batch_size=5, poll_interval=5.0)
    s.start()
    s.start()  # idempotent
    try:
        for i in range(12):
            outbox.write_decision(make_decision(i), "d")  # wakes the sender
        deadline = time.monotonic() + 5
        while outbox.status().pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert outbox.status().pending == 0
    finally:
        s.close(1.0)
    assert len(service.sent) == 12
    assert s._thread is not None and not s._thread.is_alive()


def test_a_steady_stream_of_records_goes_out_in_full_batches(
    service: Service, outbox: Outbox, transport: Transport
) -> None:
    # Batches by size and age: records trickling in while a batch is on the wire wait for
    # the next full batch (or max_delay), instead of one small request per record.
    s = sender(outbox, transport, batch_size=50, max_delay=1.0, poll_interval=5.0)
    s.start()
    try:
        for i in range(300):
            outbox.write_decision(make_decision(i), "d")
            time.sleep(0.001)
        deadline = time.monotonic() + 10
        while outbox.status().pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert outbox.status().pending == 0
    finally:
        s.close(1.0)
    assert len(service.sent) == 300 and len(set(service.sent)) == 300
    assert len(service.batches) <= 12, [len(b) for b in service.batches]


def test_close_leaves_undelivered_records_for_the_next_start(
    service: Service, outbox: Outbox, transport: Transport
) -> None:
    service.handler = lambda records: (503, {}, {"title": "down"})
    ids = fill(outbox, 3)
    s = sender(outbox, transport)
    s.start()
    start = time.monotonic()
    s.close(0.3)
    assert time.monotonic() - start < 3
    assert outbox.status().pending == 3
    service.handler = Service.accept_all
    again = sender(outbox, transport)
    again.start()
    assert again.flush(3.0)
    again.close()
    assert service.sent[-3:] == ids


def test_clean_reason_masks_id_numbers_and_bounds_length() -> None:
    assert clean_reason(f"bad {PERSON}.") == f"bad {PERSON[:6]}********{PERSON[-4:]}."
    assert len(clean_reason("x" * 1000)) == 300


# -- against the real sandbox service ------------------------------------------------------

def received(server: Any) -> list[dict[str, Any]]:
    resp = requests.get(server.base_url + "/v1/admin/feedback", timeout=30,
                        headers={"Authorization": f"Bearer {server.admin_key}"})
    resp.raise_for_status()
    records: list[dict[str, Any]] = resp.json()["records"]
    return records


def test_records_queue_during_an_outage_and_arrive_in_order_after_it(tmp_path: Path) -> None:
    db = str(tmp_path / "sandbox.db")
    server = SandboxServer(db_path=db, demo=True, port=0)
    server.start()
    port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
    key = server.demo_key
    transport = Transport(server.base_url, key, retries=0, connect_timeout=0.5)
    with make_outbox(tmp_path / "data", api_key=key) as ob:
        s = ob.attach_sender(transport, batch_size=50, max_delay=0.01, backoff=0.05,
                             max_backoff=0.3)
        s.start()
        try:
            ids = fill(ob, 60)
            assert s.flush(10.0)
            server.stop()
            ids += fill(ob, 300)  # the service is down: writes still succeed at once
            time.sleep(0.5)
            assert ob.store.pending_count() == 300
            server = SandboxServer(db_path=db, demo=True, port=port)
            server.start()
            assert s.flush(20.0)
        finally:
            s.close(1.0)
            transport.close()
    try:
        got = [r["record_id"] for r in received(server)]
    finally:
        server.stop()
    assert got == ids


def test_a_record_the_service_rejects_is_dead_lettered_without_blocking_others(
    tmp_path: Path,
) -> None:
    server = SandboxServer(db_path=str(tmp_path / "sandbox.db"), demo=True, port=0)
    server.start()
    transport = Transport(server.base_url, server.demo_key, retries=0)
    try:
        with make_outbox(tmp_path / "data", api_key=server.demo_key) as ob:
            good = fill(ob, 3)
            bad = decision_record(make_decision(), department="d").model_dump(mode="json")
            bad["outcome"] = "maybe"  # not an outcome: the service refuses this record alone
            ob.write(bad)
            good += fill(ob, 300)
            s = ob.attach_sender(transport, batch_size=100, backoff=0.05)
            assert s.flush(10.0)
            s.close(1.0)
            status = ob.status()
        got = {r["record_id"] for r in received(server)}
    finally:
        transport.close()
        server.stop()
    assert (status.dead_lettered, status.delivered) == (1, 303)
    assert "outcome" in status.dead_reasons[0][0].lower()
    assert set(good) <= got and bad["record_id"] not in got


def test_a_forked_child_restarts_its_own_sender_thread(
    service: Service, outbox: Outbox, transport: Transport
) -> None:
    s = sender(outbox, transport, poll_interval=5.0)
    s.start()
    try:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            ok = s._thread is None  # the parent's thread does not exist here
            s.start()
            ok = ok and s._thread is not None and s._thread.is_alive()
            ok = ok and s.owner.startswith(f"{os.getpid()}:")
            s.close(0.5)
            os._exit(0 if ok else 1)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert s._thread is not None and s._thread.is_alive()
    finally:
        s.close(1.0)


def _commitment_record(decision_id: str) -> dict[str, Any]:
    record = decision_record(make_decision(decision_id=decision_id), department="d")
    data = record.model_dump(mode="json")
    data.update(record_id=f"commit-{decision_id}", kind="commitment", commitment_id="c-1",
                items=["设备清单"], due="2025-10-14", provisional=False)
    return data


def test_a_kind_the_service_does_not_list_stays_pending_and_is_reported(
    outbox: Outbox, transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    kinds = ["decision", "outcome", "post_check"]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        service = Service(rsps)
        rsps.add_callback(responses.GET, BASE + "/v1/capabilities", callback=lambda r: (
            200, {}, json.dumps({"protocol": "1.1", "record_kinds": kinds})))
        decision_id = write(outbox, 1)
        outbox.write(_commitment_record("held-1"))
        s = sender(outbox, transport)
        with caplog.at_level(logging.WARNING, "credit_check.outbox"):
            assert s.flush(2.0)  # nothing the service takes is left
        assert service.sent == [decision_id]
        assert outbox.status().pending == 1 and s.held == 1
        assert "1 records are kept pending" in caplog.text and "commitment" not in kinds
        # The service learns the kind: the record goes out at the next look.
        kinds.append("commitment")
        s._kinds_at = s._looked_at = float("-inf")  # as a minute later
        assert s.flush(2.0)
        s.close()
    assert service.sent == [decision_id, "commit-held-1"]
    assert outbox.status().pending == 0


def test_no_capabilities_call_while_only_v1_kinds_are_pending(
    outbox: Outbox, transport: Transport
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        service = Service(rsps)
        rsps.add(responses.GET, BASE + "/v1/capabilities", status=404)
        ids = fill(outbox, 3)
        s = sender(outbox, transport)
        assert s.flush(2.0)
        s.close()
        paths = [c.request.path_url for c in rsps.calls]
    assert service.sent == ids and "/v1/capabilities" not in paths


def test_a_v1_service_gets_only_the_v1_kinds(outbox: Outbox, transport: Transport) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        service = Service(rsps)
        rsps.add(responses.GET, BASE + "/v1/capabilities", status=404)
        decision_id = write(outbox, 1)
        outbox.write(_commitment_record("held-2"))
        s = sender(outbox, transport)
        assert s.flush(2.0)
        s.close()
    assert service.sent == [decision_id]
    assert outbox.status().pending == 1
