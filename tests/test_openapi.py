"""The sandbox's OpenAPI document: the copy in docs/ is the one served, it names every
route, and schemathesis finds no 500 and no response outside the document."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks
from starlette.routing import Route

from credit_check._server import create_app, open_sandbox

ROOT = Path(__file__).resolve().parent.parent


# Identifiers carry check characters the document cannot express, so schema-valid data may
# rightly be refused (400): the checks are those every answer must pass.
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance]


def _served() -> dict[str, object]:
    text = resources.files("credit_check._server").joinpath("openapi.json").read_text()
    data: dict[str, object] = json.loads(text)
    return data


def test_docs_copy_is_the_served_document() -> None:
    assert json.loads((ROOT / "docs" / "openapi.json").read_text()) == _served()


def test_document_names_every_route_with_its_methods(tmp_path: Path) -> None:
    store, signer, admin, _ = open_sandbox(tmp_path / "s.db", demo=False)
    try:
        app = create_app(store, signer, admin)
        routes = {(r.path, m.lower()) for r in app.routes if isinstance(r, Route)
                  for m in (r.methods or ()) if m != "HEAD" and r.path != "/openapi.json"}
    finally:
        store.close()
    paths = _served()["paths"]
    assert isinstance(paths, dict)
    documented = {(p, m) for p, ops in paths.items() for m in ops}
    assert routes == documented


@pytest.fixture(scope="module")
def sandbox_app(tmp_path_factory: pytest.TempPathFactory) -> object:
    store, signer, admin, demo_key = open_sandbox(
        tmp_path_factory.mktemp("openapi") / "s.db", demo=True)
    app = create_app(store, signer, admin)
    app.state.demo_key = demo_key
    app.state.admin_key = admin
    yield app
    store.close()


def test_api_answers_within_its_document(sandbox_app: object) -> None:
    """Generated requests for every operation, with the admin key on admin calls and the
    demo department key elsewhere: never a 500, and every answer conforms to the document."""
    state = sandbox_app.state  # type: ignore[attr-defined]
    schema = schemathesis.openapi.from_asgi("/openapi.json", sandbox_app)
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        headers = {"Authorization": "Bearer " + (
            state.admin_key if "/admin/" in operation.path else state.demo_key)}

        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck),
                  database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate, Phase.shrink])
        def run(case: schemathesis.Case) -> None:
            nonlocal tried
            tried += 1
            case.call_and_validate(headers=headers, checks=CHECKS)

        run()
    assert tried >= 13 * 5
