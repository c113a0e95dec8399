"""A real Starlette app with the ASGI middleware and a real Checker against the sandbox."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from _middleware_fakes import CLEAN, TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as StarletteRoute

from credit_check import Checker, CreditCheckASGIMiddleware, FromJSON, Route
from credit_check._server import SandboxServer


@pytest.fixture
def checker(tmp_path: Path) -> Iterator[Checker]:
    server = SandboxServer(db_path=tmp_path / "sandbox.sqlite3", demo=True, port=0)
    server.start()
    try:
        with Checker(base_url=server.base_url, api_key=server.demo_key,
                     department="市公共资源交易中心", data_dir=tmp_path / "sdk",
                     encryption_key=base64.b64encode(b"integration-key-32-bytes-long!!!")
                     .decode(), service_public_key=server.public_key, start=False) as c:
            assert c.sync()
            yield c
    finally:
        server.stop()


def test_real_checker_behind_the_middleware(checker: Checker) -> None:
    async def bid(request: Request) -> JSONResponse:
        return JSONResponse({"outcome": request.state.credit_decision.outcome.value})

    app = Starlette(routes=[StarletteRoute("/bids", bid, methods=["POST"])])
    app.add_middleware(CreditCheckASGIMiddleware, checker=checker, routes=[
        Route("POST", "/bids", "bidding", subject=FromJSON("uscc"))])
    with TestClient(app) as client:
        r = client.post("/bids", json={"uscc": CLEAN})
        assert r.status_code == 200 and r.json() == {"outcome": "allow"}
        assert r.headers["x-credit-check"].startswith("allow; decision=")
