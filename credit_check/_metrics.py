"""Prometheus metrics and OpenTelemetry spans of a Checker (the ``metrics`` extra), and the
service's metrics. Nothing here runs unless asked for: :func:`enable_metrics` hooks a
Checker; without it the check path pays one ``is None`` test.

No metric label carries a subject id: labels are scenarios, outcomes, causes and paths
with the subject left out.

What is counted where, and why so: a not-listed check costs a few microseconds, so a
check is one counter increment (a cached child, no label lookup) — a per-check latency
histogram would cost more than the work it measures. Network calls are timed (lookup
latency) where a histogram costs nothing next to the round trip. Gauges that describe
state (snapshot age and version, outbox backlog) are read from ``Checker.status()`` when
Prometheus scrapes, not kept up to date on the request path.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from credit_check._checker import Checker
    from credit_check._models import Decision

_NEEDS = "credit-check metrics need prometheus_client: pip install 'credit-check[metrics]'"
_lock = threading.Lock()
# One set of instruments per registry (prometheus_client refuses a name registered twice;
# several Checkers in one process share the set and add up), keyed weakly by the registry.
_by_registry: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImportError(_NEEDS) from exc
    return prometheus_client


def degraded_cause(decision: Decision) -> str:
    """Why a degraded decision is degraded, as a metric label."""
    if decision.catalog_version is None:
        return "no_catalogue"
    text = " ".join(decision.reasons)
    if "circuit open" in text:
        return "breaker_open"
    if "服务暂不可用" in text:
        return "service_unavailable"
    if "withheld" in text:
        return "withheld"
    return "stale_answer"


class Instruments:
    """The SDK's counters and histograms in one registry."""

    def __init__(self, registry: Any) -> None:
        p = _prometheus()
        self.registry = registry
        self.checks = p.Counter("credit_check_checks", "Checks decided, by scenario and outcome",
                                ["scenario", "outcome"], registry=registry)
        self.degraded = p.Counter("credit_check_degraded_decisions",
                                  "Degraded decisions, by cause", ["cause"], registry=registry)
        self.write_failures = p.Counter("credit_check_record_write_failures",
                                        "Decision records that could not be written (the "
                                        "check was refused)", registry=registry)
        self.lookup_seconds = p.Histogram(
            "credit_check_lookup_seconds", "Lookup round trips to the list service",
            ["kind"], registry=registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
        # Counts deliveries made in this process (a sender thread, or the sidecar); with
        # the sender in a child process see the gauge credit_check_outbox_delivered.
        self.delivered = p.Counter("credit_check_records_delivered",
                                   "Feedback records the service acknowledged to this process",
                                   registry=registry)
        self.post_checks = p.Counter("credit_check_post_checks",
                                     "Post-checks (补查) recorded, by whether the outcome changed",
                                     ["changed"], registry=registry)
        # Counted by the re-screening of watched cases (DESIGN §9.3) where it runs.
        self.rescreens = p.Counter("credit_check_rescreens",
                                   "Re-screens of watched cases, by whether the outcome changed",
                                   ["changed"], registry=registry)
        self._children: dict[tuple[str, str], Any] = {}
        self.checkers: weakref.WeakSet[Checker] = weakref.WeakSet()
        registry.register(_StatusCollector(self))

    def checked(self, decision: Decision) -> None:
        """Count one decision (the request path: a cached child counter)."""
        key = (decision.transaction.scenario, decision.outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.checks.labels(str(key[0]), str(key[1]))
        child.inc()
        if decision.degraded:
            self.degraded.labels(degraded_cause(decision)).inc()

    def answered(self, method: str, path: str, status: int, seconds: float, body: Any) -> None:
        """Called by the transport after each answered call (off the not-listed path)."""
        if path.startswith("/v1/subjects"):
            self.lookup_seconds.labels("batch" if path.endswith(":batch") else "single"
                                       ).observe(seconds)
        elif path == "/v1/feedback" and status == 200 and isinstance(body, dict):
            acknowledged = len(body.get("accepted") or ()) + len(body.get("duplicates") or ())
            self.delivered.inc(acknowledged)


class _StatusCollector:
    """Gauges read from each instrumented Checker's status at scrape time."""

    def __init__(self, instruments: Instruments) -> None:
        self._instruments = instruments

    def describe(self) -> list[Any]:
        return []  # collected fresh each scrape; nothing to check for duplicates

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        names = {
            "snapshot_version": "The snapshot version in use",
            "data_age_seconds": "Seconds since the newest signed answer arrived",
            "stale": "1 when the data is stale (looked up online)",
            "ready": "1 when a catalogue is present",
            "outbox_pending": "Feedback records not yet delivered",
            "outbox_dead_lettered": "Feedback records the service rejected",
            "outbox_oldest_pending_seconds": "Age of the oldest undelivered record",
            "outbox_delivered": "Delivered records still kept (the retention period): its "
                                "rate is the delivery rate whichever process delivers",
            "post_check_pending": "Degraded decisions waiting for a post-check",
            "breaker_open": "1 while the circuit breaker is open",
        }
        families = {n: GaugeMetricFamily(f"credit_check_{n}", h, labels=["data_dir"])
                    for n, h in names.items()}
        for checker in list(self._instruments.checkers):
            try:
                s = checker.status()
                box = checker._outbox.status() if checker._outbox is not None else None
            except Exception:  # noqa: S112 - a scrape never fails on one checker
                continue
            label = [str(checker.settings.data_dir)]
            values = {
                "snapshot_version": s.snapshot_version, "data_age_seconds": s.data_age,
                "stale": float(s.stale), "ready": float(s.ready),
                "outbox_pending": s.outbox_pending,
                "outbox_dead_lettered": s.outbox_dead_lettered,
                "outbox_oldest_pending_seconds": box.oldest_pending_age if box else None,
                "outbox_delivered": box.delivered if box else None,
                "post_check_pending": s.post_check_pending,
                "breaker_open": float(s.breaker == "open"),
            }
            for name, value in values.items():
                if value is not None:
                    families[name].add_metric(label, float(value))
        yield from families.values()


def instruments(registry: Any = None) -> Instruments:
    """The SDK's instruments in ``registry`` (default: prometheus_client's own)."""
    registry = registry if registry is not None else _prometheus().REGISTRY
    with _lock:
        found = _by_registry.get(registry)
        if found is None:
            found = _by_registry[registry] = Instruments(registry)
        return found


def enable_metrics(checker: Checker, registry: Any = None) -> Any:
    """Count ``checker``'s checks, lookups, deliveries and post-checks in ``registry``
    (default: prometheus_client's ``REGISTRY``), and report its status as gauges. Expose
    them as prometheus_client does (``start_http_server``, ``make_wsgi_app``,
    ``make_asgi_app``); under gunicorn, see :func:`metrics_registry`.

    Returns:
        The registry.

    Raises:
        ImportError: prometheus_client is not installed (the ``metrics`` extra).
    """
    found = instruments(registry)
    found.checkers.add(checker)
    checker._metrics = found
    checker._transport.observe = found.answered
    return found.registry


def metrics_registry() -> Any:
    """The registry to expose: in prometheus_client's multiprocess mode (gunicorn workers,
    ``PROMETHEUS_MULTIPROC_DIR`` set before start) a fresh one collecting every worker's
    counters, else prometheus_client's ``REGISTRY``."""
    p = _prometheus()
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return p.REGISTRY
    from prometheus_client import multiprocess

    registry = p.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


# -- traces --------------------------------------------------------------------------------


class Tracer:
    """OpenTelemetry spans around checks and service calls, when ``opentelemetry-api`` is
    installed; attributes name the scenario and outcome, never the subject."""

    def __init__(self) -> None:
        from opentelemetry import trace

        self._tracer = trace.get_tracer("credit_check")

    def span(self, name: str, **attributes: Any) -> Any:
        return self._tracer.start_as_current_span(name, attributes=attributes)


def enable_tracing(checker: Checker) -> bool:
    """Put spans around ``checker``'s checks (``credit_check.check``), lookups and
    deliveries (``credit_check.http`` with the method and path, persons' ids never in a
    path); False when ``opentelemetry-api`` is not installed."""
    try:
        tracer = Tracer()
    except ImportError:
        return False
    checker._tracer = tracer
    checker._transport.tracer = tracer
    return True


def timer() -> float:
    return time.perf_counter()
