"""The service's catalogues beyond protocol v1.1's serial and epoch: a base merged with its
supplements, a staged catalogue for dry-runs signed in a context of its own, and the
subjects import with related persons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _sandbox_app_support import Sandbox, TestClient, assert_problem

from credit_check._catalog_state import CatalogState
from credit_check._crypto import load_public_key, staged_catalog_message, verify
from credit_check._exceptions import InvalidServiceData
from credit_check._server import create_app, open_sandbox
from credit_check._server._demo import demo_catalog

LIAONING = {"code": "ln", "region": "21", "name": "辽宁省补充清单（示例）",
            "source_document": "《辽宁省“十四五”社会信用体系建设规划》（辽政办发〔2022〕5号）",
            "issuing_body": "辽宁省人民政府办公厅"}


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    store, signer, admin_key, demo_key = open_sandbox(tmp_path / "s.db", demo=True)
    with TestClient(create_app(store, signer, admin_key), raise_server_exceptions=False) as c:
        yield Sandbox(c, store, signer, admin_key, demo_key)
    store.close()


def ok(resp: Any) -> Any:
    assert resp.status_code == 200, resp.text
    return resp.json()


SCHEMA_2 = {"X-Credit-Check-Schema": "2"}


def test_a_base_with_supplements_is_merged_and_published_with_provenance(sb: Sandbox) -> None:
    base = {k: v for k, v in demo_catalog().items() if k not in ("layers", "scenarios")}
    base["measures"] = [m for m in base["measures"] if "layer" not in m]
    franchise = {**base["measures"][0], "code": "LN-1", "scenarios": ["franchise"]}
    body = {**base, "version": "2026.9", "supplements": [
        {"layer": LIAONING, "measures": [franchise],
         "scenarios": [{"code": "franchise", "name_zh": "特许经营"}]}]}
    assert ok(sb.admin("PUT", "/v1/admin/catalog", json=body))["schema"] == 2
    served = ok(sb.get("/v1/catalog", headers=SCHEMA_2))["catalog"]
    assert "supplements" not in served
    assert served["layers"][-1]["source_document"].endswith("（辽政办发〔2022〕5号）")
    assert next(m for m in served["measures"] if m["code"] == "LN-1")["layer"] == "ln"
    weaker = {**base["measures"][0], "effect": "restrict"}
    bad = {**base, "supplements": [{"layer": LIAONING, "measures": [weaker]}]}
    assert_problem(sb.admin("PUT", "/v1/admin/catalog", json=bad), 422, "P-001",
                   "would weaken", "milder")


def test_a_staged_catalogue_is_served_signed_as_staged_only(sb: Sandbox) -> None:
    assert_problem(sb.get("/v1/catalog?stage=1", headers=SCHEMA_2), 404, "stage")
    draft = {**demo_catalog(), "version": "2026.9-draft"}
    made = ok(sb.admin("PUT", "/v1/admin/catalog?stage=1", json=draft))
    assert made == {"version": "2026.9-draft", "staged": True, "serial": 1, "schema": 2}
    assert ok(sb.get("/v1/capabilities"))["staged_catalog"] == {
        "serial": 1, "version": "2026.9-draft", "schema": 2}
    current = ok(sb.get("/v1/catalog", headers=SCHEMA_2))
    assert current["catalog"]["version"] == "2026.2"  # staging changes nothing live
    body = ok(sb.get("/v1/catalog?stage=1", headers=SCHEMA_2))
    assert (body["staged"], body["serial"], body["catalog"]["version"]) == (
        True, 1, "2026.9-draft")
    key = load_public_key(sb.signer.public_key)
    verify(key, staged_catalog_message(body["catalog"], serial=1, epoch=1, schema=2),
           body["signature_staged"], "staged")
    # Its answer can never pass for the current catalogue's, whatever is copied over.
    forged = {**body, "signature": body["signature_staged"],
              "signature_v2": body["signature_staged"]}
    with pytest.raises(InvalidServiceData):
        CatalogState.from_response(forged, None, key)
    assert_problem(sb.get("/v1/catalog?stage=1"), 406, "schema 2")  # a wave-1 client
    assert ok(sb.admin("PUT", "/v1/admin/catalog?stage=1", json=draft))["serial"] == 2
    assert_problem(sb.admin("PUT", "/v1/admin/catalog?stage=1",
                            json={**draft, "serial": 9}), 422, "serial")
    assert_problem(sb.admin("PUT", "/v1/admin/catalog?stage=maybe", json=draft), 400)
    assert_problem(sb.admin("DELETE", "/v1/admin/catalog"), 405, "stage=1")
    assert ok(sb.admin("DELETE", "/v1/admin/catalog?stage=1")) == {
        "staged": False, "withdrawn": 2}
    assert ok(sb.get("/v1/capabilities"))["staged_catalog"] is None
    assert_problem(sb.admin("PUT", "/v1/admin/catalog?stage=1", json={"version": "x"}), 422)
    assert_problem(sb.client.put("/v1/admin/catalog?stage=1", json=draft), 401)
