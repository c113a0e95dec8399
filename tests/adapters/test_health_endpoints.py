"""The adapters' liveness and readiness endpoints (Django, Flask, FastAPI) over a real
Checker and the real sandbox: 200 when ready, 503 with the problems when not, 503 (never
an exception into the app) when the probe itself fails."""

from __future__ import annotations

import base64
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
from credit_check.adapters.django_health import healthz, readiness_view
from credit_check.adapters.fastapi_health import readiness_router
from credit_check.adapters.flask_health import readiness_blueprint
from django.test import RequestFactory
from fastapi import FastAPI

from credit_check import Checker
from credit_check._server import SandboxServer

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

KEY = base64.b64encode(b"adapter-health-key-32-bytes-long").decode()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxServer]:
    with SandboxServer(tmp_path / "sandbox.db", demo=True) as server:
        yield server


@pytest.fixture
def make(sandbox: SandboxServer, tmp_path: Path) -> Iterator[Callable[[bool], Checker]]:
    made: list[Checker] = []

    def build(synced: bool) -> Checker:
        checker = Checker(base_url=sandbox.base_url, api_key=sandbox.demo_key,
                          department="市行政审批局", data_dir=tmp_path / f"sdk{len(made)}",
                          encryption_key=KEY, service_public_key=sandbox.public_key,
                          start=False)
        made.append(checker)
        if synced:
            assert checker.sync()
        return checker

    yield build
    for checker in made:
        checker.close(0.0)


def _broken() -> Any:
    raise RuntimeError("no checker")


def flask_get(checker: Any, path: str) -> tuple[int, dict[str, Any]]:
    app = flask.Flask("t")
    app.register_blueprint(readiness_blueprint(checker))
    resp = app.test_client().get(path)
    return resp.status_code, resp.get_json()


def fastapi_get(checker: Any, path: str) -> tuple[int, dict[str, Any]]:
    app = FastAPI()
    app.include_router(readiness_router(checker))
    resp = TestClient(app).get(path)
    return resp.status_code, resp.json()


def django_get(checker: Any, path: str) -> tuple[int, dict[str, Any]]:
    import json

    request = RequestFactory().get(path)
    resp = healthz(request) if path == "/healthz" else readiness_view(checker)(request)
    return resp.status_code, json.loads(resp.content)


GETS = [flask_get, fastapi_get, django_get]


@pytest.mark.parametrize("get", GETS, ids=["flask", "fastapi", "django"])
def test_readyz_is_200_for_a_ready_checker(get: Any, make: Callable[[bool], Checker]) -> None:
    status, body = get(make(True), "/readyz")
    assert status == 200 and body["ready"] is True and body["records_writable"] is True
    assert get(make(True), "/healthz") == (200, {"status": "ok"})


@pytest.mark.parametrize("get", GETS, ids=["flask", "fastapi", "django"])
def test_readyz_is_503_before_the_catalogue(get: Any, make: Callable[[bool], Checker]) -> None:
    checker = make(False)
    status, body = get(lambda: checker, "/readyz")  # a factory works as well
    assert status == 503 and body["ready"] is False and body["catalogue"] is False
    assert any("no measure catalogue" in p for p in body["problems"])


@pytest.mark.parametrize("get", GETS, ids=["flask", "fastapi", "django"])
def test_a_failing_probe_answers_503_and_raises_nothing(get: Any) -> None:
    status, body = get(_broken, "/readyz")
    assert status == 503 and body["ready"] is False
    assert "RuntimeError" in body["problems"][0]
