"""FastAPI liveness and readiness endpoints (DESIGN §9.8) as a router.

    from credit_check.adapters.fastapi_health import readiness_router
    app.include_router(readiness_router(checker))   # GET /healthz, GET /readyz

``/readyz`` answers 200 when a catalogue is present and decision records can be written,
else 503 with the problems; stale data is reported in the body and keeps the instance
ready. The probe writes to disk, so it runs in FastAPI's thread pool, off the event loop.
"""

from __future__ import annotations

from typing import Any

try:
    from fastapi import APIRouter
    from fastapi.responses import JSONResponse
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "credit_check.adapters.fastapi_health needs FastAPI: pip install "
        "'credit-check[fastapi]'"
    ) from exc

from credit_check._readiness import HEALTHY, endpoint_answer

__all__ = ["readiness_router"]


def readiness_router(checker: Any, *, health_path: str = "/healthz",
                     ready_path: str = "/readyz") -> APIRouter:
    """A router with the liveness and readiness endpoints.

    Args:
        checker: a Checker, or a zero-argument callable returning one.
    """
    router = APIRouter()

    @router.get(health_path, include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse(HEALTHY)

    # A plain def: FastAPI runs it in its thread pool (the probe touches the disk).
    @router.get(ready_path, include_in_schema=False)
    def readyz() -> JSONResponse:
        status, body = endpoint_answer(checker)
        return JSONResponse(body, status_code=status)

    return router
