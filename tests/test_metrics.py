"""Metrics and traces (credit_check._metrics, the service's /metrics): scraped and parsed
with prometheus_client's own parser, on the real sandbox; no label carries a subject id;
gunicorn-style multiprocess mode adds up the workers' counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from credit_check import Checker, Subject, Transaction, enable_metrics, enable_tracing
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE

KEY = "bWV0cmljcy10ZXN0LWtleS0zMi1ieXRlcy1sb25nISE="
LISTED = SHOWCASE["court_defaulter_org"]
PERSON = SHOWCASE["black_person"]
CLEAN = ["91350100M000100Y43", SHOWCASE["clean_recent_org"]]
TX = Transaction(scenario="procurement", case_id="M-1")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "sandbox.db", demo=True) as server:
        yield server


@pytest.fixture
def checker(sandbox: SandboxServer, tmp_path: Path) -> Iterator[Checker]:
    made = Checker(base_url=sandbox.base_url, api_key=sandbox.demo_key, department="部门",
                   data_dir=tmp_path / "sdk", encryption_key=KEY,
                   service_public_key=sandbox.public_key, start=False)
    assert made.sync()
    yield made
    made.close(0.0)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, parsed by prometheus_client's parser."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_sandbox_metrics_are_scraped_and_parsed(sandbox: SandboxServer) -> None:
    auth = {"Authorization": f"Bearer {sandbox.demo_key}"}
    requests.get(f"{sandbox.base_url}/v1/subjects/{LISTED}?receipt=1", headers=auth,
                 timeout=10).raise_for_status()
    requests.post(f"{sandbox.base_url}/v1/subjects:batch", json={"ids": CLEAN},
                  headers=auth, timeout=10).raise_for_status()
    resp = requests.get(f"{sandbox.base_url}/metrics", timeout=10)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    got = samples(resp.text)
    assert got[("credit_check_service_subjects_looked_up_total", (("call", "single"),))] == 1
    assert got[("credit_check_service_subjects_looked_up_total", (("call", "batch"),))] == 2
    assert got[("credit_check_service_receipts_signed_total", ())] == 1
    assert got[("credit_check_service_catalog_present", ())] == 1
    assert got[("credit_check_service_snapshot_version", ())] >= 1


def test_a_checkers_metrics_count_checks_lookups_and_deliveries_without_subject_ids(
        checker: Checker) -> None:
    registry = CollectorRegistry()
    enable_metrics(checker, registry)
    for sid in CLEAN * 3:
        checker.check(sid, TX)
    checker.check(LISTED, TX)
    checker.check_many([Subject.person(PERSON)], TX, online=True)
    assert checker._outbox is not None
    sender = checker._outbox.attach_sender(checker._transport)
    assert sender.flush(30)
    text = generate_latest(registry).decode()
    got = samples(text)
    outcome = ("credit_check_checks_total", (("outcome", "allow"), ("scenario", "procurement")))
    assert got[outcome] == 6
    denied = ("credit_check_checks_total", (("outcome", "deny"), ("scenario", "procurement")))
    assert got[denied] == 2
    assert got[("credit_check_lookup_seconds_count", (("kind", "single"),))] == 1
    assert got[("credit_check_lookup_seconds_count", (("kind", "batch"),))] == 1
    assert got[("credit_check_records_delivered_total", ())] == 8
    data_dir = (("data_dir", str(checker.settings.data_dir)),)
    assert got[("credit_check_snapshot_version", data_dir)] == checker.status().snapshot_version
    assert got[("credit_check_outbox_pending", data_dir)] == 0
    assert got[("credit_check_outbox_delivered", data_dir)] == 8
    assert got[("credit_check_ready", data_dir)] == 1
    for sid in [*CLEAN, LISTED, PERSON]:
        assert sid not in text and sid[:6] + "********" not in text


def test_degraded_decisions_are_counted_by_cause(checker: Checker, sandbox: SandboxServer
                                                  ) -> None:
    registry = CollectorRegistry()
    enable_metrics(checker, registry)
    sandbox.stop()  # the service is gone: listed prefixes fall back
    checker.check(LISTED, TX)
    got = samples(generate_latest(registry).decode())
    causes = {dict(k[1])["cause"]: v for k, v in got.items()
              if k[0] == "credit_check_degraded_decisions_total"}
    assert causes == {"service_unavailable": 1}


def test_enable_metrics_twice_on_one_registry_shares_the_counters(
        checker: Checker, sandbox: SandboxServer, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    other = Checker(base_url=sandbox.base_url, api_key=sandbox.demo_key, department="部门",
                    data_dir=tmp_path / "sdk2", encryption_key=KEY,
                    service_public_key=sandbox.public_key, start=False)
    try:
        assert other.sync()
        enable_metrics(checker, registry)
        enable_metrics(other, registry)
        checker.check(CLEAN[0], TX)
        other.check(CLEAN[0], TX)
        got = samples(generate_latest(registry).decode())
        key = ("credit_check_checks_total", (("outcome", "allow"), ("scenario", "procurement")))
        assert got[key] == 2
    finally:
        other.close(0.0)


WORKER = textwrap.dedent("""
    import sys
    from credit_check import Checker, Transaction, enable_metrics
    checker = Checker(base_url=sys.argv[1], api_key=sys.argv[2], department="部门",
                      data_dir=sys.argv[3], encryption_key=sys.argv[4],
                      service_public_key=sys.argv[5], start=False)
    assert checker.sync()
    enable_metrics(checker)
    for _ in range(int(sys.argv[6])):
        checker.check("91350100M000100Y43", Transaction(scenario="licensing"))
    checker.close(0.0)
""")
SCRAPER = textwrap.dedent("""
    from prometheus_client import generate_latest
    from credit_check import metrics_registry
    print(generate_latest(metrics_registry()).decode())
""")


def test_multiprocess_mode_adds_up_the_workers_counts(sandbox: SandboxServer,
                                                      tmp_path: Path) -> None:
    shared = tmp_path / "prom"
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    for n, data_dir in ((3, "w1"), (4, "w2")):
        subprocess.run([sys.executable, "-c", WORKER, sandbox.base_url, sandbox.demo_key,
                        str(tmp_path / data_dir), KEY, sandbox.public_key, str(n)],
                       env=env, check=True, timeout=120)
    out = subprocess.run([sys.executable, "-c", SCRAPER], env=env, check=True, timeout=60,
                         capture_output=True, text=True).stdout
    got = samples(out)
    assert got[("credit_check_checks_total", (("outcome", "allow"),
                                              ("scenario", "licensing")))] == 7


def test_spans_name_the_scenario_and_outcome_and_never_a_persons_id(
        checker: Checker, monkeypatch: pytest.MonkeyPatch) -> None:
    # opentelemetry-api's own no-op classes, recording what the SDK asks of them.
    trace = pytest.importorskip("opentelemetry.trace")
    recorded: list[tuple[str, dict[str, Any]]] = []

    class Span(trace.NonRecordingSpan):  # type: ignore[misc]
        def __init__(self, name: str, attributes: dict[str, Any]) -> None:
            super().__init__(trace.INVALID_SPAN_CONTEXT)
            self.entry = (name, dict(attributes))
            recorded.append(self.entry)

        def set_attribute(self, key: str, value: Any) -> None:
            self.entry[1][key] = value

    class Tracer(trace.NoOpTracer):  # type: ignore[misc]
        def start_as_current_span(self, name: str, *args: Any, attributes: Any = None,
                                  **kw: Any) -> Any:
            return trace.use_span(Span(name, attributes or {}), end_on_exit=True)

    class Provider(trace.NoOpTracerProvider):  # type: ignore[misc]
        def get_tracer(self, *args: Any, **kw: Any) -> Any:
            return Tracer()

    monkeypatch.setattr(trace, "get_tracer", lambda *a, **k: Provider().get_tracer())
    assert enable_tracing(checker)
    checker.check(LISTED, TX)
    checker.check_many([Subject.person(PERSON)], TX, online=True)
    names = [name for name, _ in recorded]
    assert names[:2] == ["credit_check.check", "credit_check.http"]
    assert recorded[0][1] == {"scenario": "procurement", "outcome": "deny", "degraded": False}
    assert "credit_check.check_many" in names
    assert PERSON not in json.dumps(recorded, ensure_ascii=False)
