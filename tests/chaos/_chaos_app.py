"""The guarded application of the chaos test, as a real deployment would write it: the
checker from the environment (``CREDIT_CHECK_*``), the middleware on ``POST /bids``.

    gunicorn -w 4 [--preload] _chaos_app:wsgi        uvicorn --workers 2 --factory _chaos_app:asgi
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from credit_check import (
    Checker,
    CreditCheckASGIMiddleware,
    CreditCheckWSGIMiddleware,
    FromJSON,
    Route,
)

ROUTES = [Route("POST", "/bids", "procurement", subject=FromJSON("uscc"))]


def _bare_wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"ok":true}']


# Built at import: in the master with --preload (then forked), in each worker otherwise.
wsgi = CreditCheckWSGIMiddleware(_bare_wsgi, checker=Checker.from_env(), routes=ROUTES)


def asgi() -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})

    return CreditCheckASGIMiddleware(app, checker=Checker.from_env(), routes=ROUTES)
