"""examples/procurement: FastAPI bids behind the ASGI middleware, against the real sandbox."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from _examples_support import TestClient, load_example

from credit_check import Checker

procurement = load_example("procurement")


@pytest.fixture
def app(checker: Checker, tmp_path: Path) -> Any:
    return procurement.build_app(checker, reports_dir=tmp_path / "tender-files")


@pytest.fixture
def client(app: Any) -> TestClient:
    return TestClient(app)


def bid(uscc: str, name: str = "示例供应商有限公司") -> dict[str, Any]:
    return {"bidder": {"uscc": uscc, "name": name}, "price": "1280000.00"}


def test_clean_bidder_is_received(client: TestClient, ids: dict[str, str]) -> None:
    resp = client.post("/tenders/CG-2026-001/bids", json=bid(ids["unknown_org"]))
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Credit-Check"].startswith("allow; decision=")
    body = resp.json()
    assert body["status"] == "received" and body["bid_no"] == "CG-2026-001-B001"
    assert resp.headers["X-Credit-Check"].endswith(body["decisions"][0])


def test_court_defaulter_is_refused(client: TestClient, app: Any, ids: dict[str, str]) -> None:
    resp = client.post("/tenders/CG-2026-001/bids", json=bid(ids["court_defaulter_org"]))
    assert resp.status_code == 403
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert [m["code"] for m in problem["measures"]] == ["P-001"]
    assert "政府采购法" in problem["measures"][0]["legal_basis"]
    assert problem["entries"][0]["issuing_department"]
    assert problem["remedy"]
    assert app.state.bids.bidders("CG-2026-001") == []        # the endpoint never ran


def test_consortium_with_a_tax_violator_is_refused(client: TestClient, app: Any,
                                                   ids: dict[str, str]) -> None:
    body = {"lead": {"uscc": ids["clean_recent_org"], "name": "牵头人"},
            "members": [{"uscc": ids["unknown_org"], "name": "成员一"},
                        {"uscc": ids["tax_violator_org"], "name": "成员二"}],
            "price": "990000"}
    resp = client.post("/tenders/CG-2026-002/consortium-bids", json=body)
    assert resp.status_code == 403
    problem = resp.json()
    assert {m["code"] for m in problem["measures"]} == {"P-001"}
    assert [d["outcome"] for d in problem["decisions"]] == ["allow", "allow", "deny"]
    assert app.state.bids.bidders("CG-2026-002") == []

    body["members"] = body["members"][:1]
    resp = client.post("/tenders/CG-2026-002/consortium-bids", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["X-Credit-Check"].startswith("allow; decisions=")
    assert len(resp.json()["decisions"]) == 2


def test_invalid_code_is_a_problem(client: TestClient) -> None:
    resp = client.post("/tenders/CG-2026-001/bids", json=bid("91110000600037341N"))
    assert resp.status_code == 400
    assert resp.json()["field"] == "json:bidder.uscc"


def test_bid_opening_writes_the_query_record(client: TestClient, app: Any, checker: Checker,
                                             ids: dict[str, str], tmp_path: Path) -> None:
    assert client.post("/tenders/CG-2026-003/bids", json=bid(ids["unknown_org"], "甲公司")).status_code == 200
    assert client.post("/tenders/CG-2026-003/bids", json=bid(ids["repaired_org"], "乙公司")).status_code == 200
    # Paper bids registered by the agency, and a natural person bidding in their own name:
    # the bid-opening query is what catches them.
    book = app.state.bids
    Party = procurement.Party
    book.add("CG-2026-003", [("bidder", Party(uscc=ids["court_defaulter_org"], name="丙公司"))])
    book.add("CG-2026-003", [("bidder", Party(uscc=ids["black_person"], name="张某"))])

    resp = client.post("/tenders/CG-2026-003/opening")
    assert resp.status_code == 200, resp.text
    assert resp.json()["bidders"] == 4

    csv_resp = client.get("/tenders/CG-2026-003/opening/report.csv")
    assert csv_resp.status_code == 200
    text = csv_resp.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["name"] for r in rows] == ["甲公司", "乙公司", "丙公司", "张某"]
    assert [r["outcome"] for r in rows] == ["allow", "allow", "deny", "deny"]
    assert [r["bid_no"] for r in rows] == [f"CG-2026-003-B00{i}" for i in range(1, 5)]
    by_name = {r["name"]: r for r in rows}
    assert by_name["丙公司"]["measures"].startswith("P-001")
    assert "court.judgment_defaulter" in by_name["丙公司"]["entries"]
    assert by_name["乙公司"]["entries"] == ""                  # repaired: never shown (rule 4)
    person = ids["black_person"]
    assert by_name["张某"]["subject"] == person[:6] + "********" + person[-4:]
    assert person not in text                                   # masked everywhere
    assert by_name["甲公司"]["subject"] == ids["unknown_org"]
    for r in rows:
        assert r["catalog_version"] == "2026.2" and r["data_version"]
        assert r["queried_at"] and r["decision_id"]
    assert (tmp_path / "tender-files" / "CG-2026-003-credit-query.csv").is_file()
    # The opening query is part of the case's query record too.
    kinds = [r.outcome.value for r in checker.checks_for_case("CG-2026-003")]
    assert kinds.count("deny") == 2


def test_opening_without_bids_is_404(client: TestClient) -> None:
    assert client.post("/tenders/CG-404/opening").status_code == 404
    assert client.get("/tenders/CG-404/opening/report.csv").status_code == 404
