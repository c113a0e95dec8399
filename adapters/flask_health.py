"""Flask liveness and readiness endpoints (DESIGN §9.8) as a blueprint.

    from credit_check.adapters.flask_health import readiness_blueprint
    app.register_blueprint(readiness_blueprint(checker))   # GET /healthz, GET /readyz

``/readyz`` answers 200 when a catalogue is present and decision records can be written,
else 503 with the problems; stale data is reported in the body and keeps the instance
ready.
"""

from __future__ import annotations

import json
from typing import Any

try:
    import flask
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "credit_check.adapters.flask_health needs Flask: pip install 'credit-check[flask]'"
    ) from exc

from credit_check._readiness import HEALTHY, endpoint_answer

__all__ = ["readiness_blueprint"]


def readiness_blueprint(checker: Any, *, name: str = "credit_check_health",
                        health_path: str = "/healthz", ready_path: str = "/readyz"
                        ) -> flask.Blueprint:
    """A blueprint with the liveness and readiness endpoints.

    Args:
        checker: a Checker, or a zero-argument callable returning one.
    """
    blueprint = flask.Blueprint(name, __name__)

    @blueprint.get(health_path)
    def healthz() -> flask.Response:
        return _json(HEALTHY, 200)

    @blueprint.get(ready_path)
    def readyz() -> flask.Response:
        status, body = endpoint_answer(checker)
        return _json(body, status)

    return blueprint


def _json(body: dict[str, Any], status: int) -> flask.Response:
    return flask.Response(json.dumps(body, ensure_ascii=False), status=status,
                          mimetype="application/json")
