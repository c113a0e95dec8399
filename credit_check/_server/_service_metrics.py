"""The service's Prometheus metrics at ``GET /metrics`` (with the ``metrics`` extra): what
it answered and took in, and where its data stands. One registry per application, so that
several sandboxes in one process (tests, the demo) do not mix their counts. No label
carries a subject id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from credit_check._server._http import problem_response
from credit_check._server._store import Store


class ServiceMetrics:
    """Counters of one sandbox application, and gauges read from its store at scrape."""

    def __init__(self, store: Store) -> None:
        import prometheus_client as p

        self._p = p
        self.registry = p.CollectorRegistry()
        self.subjects = p.Counter("credit_check_service_subjects_looked_up",
                                  "Subjects looked up, by call (single, batch)", ["call"],
                                  registry=self.registry)
        self.receipts = p.Counter("credit_check_service_receipts_signed",
                                  "Receipts (查询凭证) signed", registry=self.registry)
        self.feedback = p.Counter("credit_check_service_feedback_records",
                                  "Feedback records received, by result (accepted, "
                                  "duplicate, rejected)", ["result"], registry=self.registry)
        self.registry.register(_StoreCollector(store))

    @classmethod
    def create(cls, store: Store) -> ServiceMetrics | None:
        """The metrics, or None without prometheus_client (``/metrics`` then says so)."""
        try:
            return cls(store)
        except ImportError:
            return None

    def feedback_taken(self, answer: dict[str, Any]) -> None:
        for result, key in (("accepted", "accepted"), ("duplicate", "duplicates"),
                            ("rejected", "rejected")):
            count = len(answer.get(key) or ())
            if count:
                self.feedback.labels(result).inc(count)

    def exposition(self) -> Response:
        return Response(self._p.generate_latest(self.registry),
                        media_type=self._p.CONTENT_TYPE_LATEST)


class _StoreCollector:
    def __init__(self, store: Store) -> None:
        self._store = store

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        store = self._store
        head = store.refresh(max_age=1.0)
        current = store.catalog()
        for name, text, value in (
                ("snapshot_version", "The current snapshot version", head.version),
                ("catalog_serial", "The current catalogue serial", head.catalog_serial),
                ("epoch", "The database epoch", head.epoch),
                ("catalog_present", "1 when a catalogue is loaded", int(current is not None)),
                ("listed_prefixes", "Prefixes in the snapshot set",
                 len(getattr(store, "index", ())))):
            yield GaugeMetricFamily(f"credit_check_service_{name}", text, value=float(value))


async def metrics_endpoint(metrics: ServiceMetrics | None, request: Request) -> Response:
    if metrics is None:
        return problem_response(404, "metrics need prometheus_client: pip install "
                                     "'credit-check[metrics]'")
    return metrics.exposition()
