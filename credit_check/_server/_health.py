"""The service's liveness and readiness endpoints (DESIGN §9.8), unauthenticated so that a
load balancer or an orchestrator can probe them; they reveal no data.

- ``GET /healthz``: 200 while the process answers.
- ``GET /readyz``: 200 when the database answers, the signing key is loaded and a
  catalogue is present; else 503 naming what is not.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from credit_check._crypto import load_public_key, verify
from credit_check._receipts import key_id
from credit_check._server._store import StoreUnavailable

if TYPE_CHECKING:
    from credit_check._server._app import Sandbox

logger = logging.getLogger("credit_check.sandbox")
_PROBE = b"credit-check/readiness-probe"


class Health:
    """The two probes over one :class:`~credit_check._server._app.Sandbox`."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        store, signer = self._sandbox.store, self._sandbox.signer
        checks: dict[str, str] = {}
        try:
            await run_in_threadpool(store.ping)
            checks["database"] = "ok"
        except StoreUnavailable as exc:
            logger.error("readiness: %s", exc)
            checks["database"] = "unreachable"
        try:
            # The key signs and its own public half verifies: loaded and whole.
            verify(load_public_key(signer.public_key), _PROBE, signer.sign(_PROBE), "probe")
            checks["signing_key"] = f"ok ({key_id(signer.public_key)})"
        except Exception:
            checks["signing_key"] = "not usable"
        checks["catalogue"] = "ok" if store.catalog() is not None else "missing"
        ready = all(v.startswith("ok") for v in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)
