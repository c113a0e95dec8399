"""The list service and the v1.1 record kinds of the case lifecycle (DESIGN §9.6):
accepted when well formed, refused with the field named when not, counted by kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _sandbox_app_support import Sandbox, TestClient, make_decision

from credit_check._crypto import feedback_key, record_hmac
from credit_check._feedback import decision_record, record_id_for
from credit_check._server import create_app, open_sandbox


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    store, signer, admin_key, demo_key = open_sandbox(tmp_path / "s.db", demo=True)
    with TestClient(create_app(store, signer, admin_key), raise_server_exceptions=False) as c:
        yield Sandbox(c, store, signer, admin_key, demo_key)
    store.close()


def signed(api_key: str, kind: str, **fields: Any) -> dict[str, Any]:
    """A record of ``kind`` about a demo decision, with ``fields`` set, signed as sent."""
    record = decision_record(make_decision(0), department="财政局").model_dump(mode="json")
    record.update(kind=kind, record_id=record_id_for(kind, str(sorted(fields.items()))),
                  **fields)
    record["hmac"] = record_hmac(feedback_key(api_key), record)
    return record


GOOD = [
    ("rescreen", {"lift": False, "previous_outcome": "allow"}),
    ("rescreen", {"lift": True, "previous_outcome": "deny", "lifted_entries": ["fb:0"]}),
    ("commitment", {"commitment_id": "c1", "items": ["设备清单"], "due": "2025-10-14",
                    "provisional": False}),
    ("commitment_fulfilled", {"commitment_id": "c1", "items": ["设备清单"]}),
    ("commitment_waived", {"commitment_id": "c1", "note": "材料已无需提供"}),
    ("commitment_breached", {"commitment_id": "c1", "items": ["设备清单"],
                             "due": "2025-10-14", "provisional": False}),
    ("case_opened", {}),
]


def test_every_lifecycle_kind_is_accepted_stored_and_counted(sb: Sandbox) -> None:
    records = [signed(sb.demo_key, kind, **fields) for kind, fields in GOOD]
    resp = sb.post("/v1/feedback", json={"records": records})
    assert resp.status_code == 200, resp.text
    assert resp.json()["accepted"] == [r["record_id"] for r in records]
    stored = sb.admin("GET", "/v1/admin/feedback").json()["records"]
    assert stored == records
    stats = sb.admin("GET", "/v1/admin/stats").json()
    assert {r["kind"]: r["records"] for r in stats["by_kind"]} == {
        "case_opened": 1, "commitment": 1, "commitment_breached": 1,
        "commitment_fulfilled": 1, "commitment_waived": 1, "rescreen": 2}
    assert stats["total"]["checks"] == 0  # only decision records are checks


BAD = [
    ("rescreen", {"previous_outcome": "allow"}, "lift"),
    ("rescreen", {"lift": True, "previous_outcome": "deny"}, "lifted_entries"),
    ("commitment", {"commitment_id": "c1", "due": "2025-10-14", "provisional": False},
     "items"),
    ("commitment", {"items": ["x"], "due": "2025-10-14", "provisional": False},
     "commitment_id"),
    ("commitment_fulfilled", {"commitment_id": "c1"}, "items"),
    ("decision", {"lift": False}, "lift"),
    ("outcome", {"commitment_id": "c1"}, "commitment_id"),
    ("commitment", {"commitment_id": "c1", "items": [""], "due": "2025-10-14",
                    "provisional": False}, "items.0"),
    ("commitment", {"commitment_id": "c1", "items": ["x"], "due": "soon",
                    "provisional": False}, "due"),
]


@pytest.mark.parametrize(("kind", "fields", "named"), BAD)
def test_a_malformed_lifecycle_record_is_refused_naming_the_field(
        sb: Sandbox, kind: str, fields: dict[str, Any], named: str) -> None:
    record = signed(sb.demo_key, kind, **fields)
    resp = sb.post("/v1/feedback", json={"records": [record]})
    assert resp.status_code == 200
    body = resp.json()
    assert body["accepted"] == []
    assert len(body["rejected"]) == 1 and named in body["rejected"][0]["reason"]
