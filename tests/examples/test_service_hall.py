"""examples/service_hall: the clerk's pages against the real sandbox."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from _examples_support import TestClient, load_example

from credit_check import Checker

hall = load_example("service_hall")


@pytest.fixture
def client(checker: Checker) -> TestClient:
    return TestClient(hall.build_app(checker, department="示范市政务服务中心"))


def _hidden(page: str, name: str) -> str:
    found = re.search(rf'name={name} value="([^"]*)"', page)
    assert found, f"no hidden field {name}"
    return html.unescape(found.group(1))


def test_home_page_has_the_form(client: TestClient) -> None:
    resp = client.get("/")
    assert resp.status_code == 200
    assert "<form method=post action=/check>" in resp.text
    assert 'value="licensing" selected' in resp.text


def test_green_channel_then_commitment_is_reported(client: TestClient, checker: Checker,
                                                   ids: dict[str, str], feedback: Any) -> None:
    resp = client.post("/check", data={"code": ids["a_grade_org"], "scenario": "licensing",
                                       "case_id": "XK-2026-301"})
    assert resp.status_code == 200
    page = resp.text
    assert "绿色通道 / Green channel" in page
    assert "容缺受理承诺" in page and "action=/commitment" in page
    assert "<strong>30</strong> 个工作日内" in page              # commitment_days of R-001
    assert "R-001" in page and "国发〔2016〕33号" in page          # measure with legal basis
    decision_id = _hidden(page, "decision_id")
    assert _hidden(page, "case_id") == "XK-2026-301"

    resp = client.post("/commitment", data={
        "decision_id": decision_id, "case_id": "XK-2026-301",
        "missing": ["设备清单 / equipment list"], "other": "消防验收意见书<script>",
        "clerk": "窗口A01"})
    assert resp.status_code == 200, resp.text
    page = resp.text
    (made,) = checker.commitments()
    assert str(resp.url).endswith(f"/commitment/{made.commitment_id}")
    assert f"<strong id=due>{made.due.isoformat()}</strong>" in page
    assert made.due > dt.date.today() and made.items == ("设备清单 / equipment list",
                                                         "消防验收意见书<script>")
    assert "消防验收意见书&lt;script&gt;" in page and "<script>" not in page
    assert "材料已收 / Materials received" in page and "待补齐 / open" in page

    records = checker.checks_for_case("XK-2026-301")
    assert [r.kind for r in records] == ["decision", "outcome", "commitment"]
    outcome = records[1]
    assert outcome.result == "accepted" and outcome.decision_id == decision_id
    assert outcome.operator == "窗口A01"
    assert outcome.note is not None and "设备清单" in outcome.note and "30个工作日内" in outcome.note
    assert records[2].commitment_id == made.commitment_id and records[2].due == made.due

    # The materials arrive: one, then the other.
    resp = client.post(f"/commitment/{made.commitment_id}/received",
                       data={"item": ["设备清单 / equipment list"], "clerk": "窗口A02"})
    assert resp.status_code == 200 and "待补齐 / open" in resp.text
    resp = client.post(f"/commitment/{made.commitment_id}/received",
                       data={"item": ["消防验收意见书<script>"]})
    assert "已履约 / fulfilled" in resp.text and "Materials received" not in resp.text
    resp = client.post(f"/commitment/{made.commitment_id}/received", data={"item": ["x"]})
    assert resp.status_code == 200 and "fulfilled already" in resp.text

    checker.close()                                            # delivers the outbox
    received = [r for r in feedback() if r["transaction"].get("case_id") == "XK-2026-301"]
    assert sorted((r["kind"], r.get("result")) for r in received) == [
        ("commitment", None), ("commitment_fulfilled", None), ("commitment_fulfilled", None),
        ("decision", None), ("outcome", "accepted")]


def test_an_unknown_commitment_is_a_404(client: TestClient) -> None:
    assert client.get("/commitment/nope").status_code == 404
    assert client.post("/commitment/nope/received", data={"item": ["x"]}).status_code == 404


def test_commitment_needs_a_green_channel_decision(client: TestClient, ids: dict[str, str]) -> None:
    resp = client.post("/check", data={"code": ids["watch_org"], "scenario": "licensing",
                                       "case_id": "XK-2026-302"})
    assert resp.status_code == 200
    assert "限制便利措施 / Restricted" in resp.text and "action=/commitment" not in resp.text
    decision_id = re.search(r"<th>查询编号 / decision</th><td>([^<]+)<", resp.text).group(1)
    resp = client.post("/commitment", data={"decision_id": decision_id,
                                            "case_id": "XK-2026-302", "missing": ["x"]})
    assert resp.status_code == 400
    assert "没有找到该办件的绿色通道核查记录" in resp.text


def test_court_defaulter_refused_in_procurement(client: TestClient, ids: dict[str, str]) -> None:
    resp = client.post("/check", data={"code": ids["court_defaulter_org"],
                                       "scenario": "procurement"})
    assert resp.status_code == 200
    page = resp.text
    assert "不予受理 / Refused" in page
    assert "P-001" in page and "《中华人民共和国政府采购法》第二十二条" in page
    assert "异议与信用修复" in page and "信用修复" in page
    assert "action=/commitment" not in page
    assert re.search(r"<th>办件编号 / case</th><td>SL-\d{8}-[0-9A-F]{6}<", page)


def test_invalid_code_is_a_clear_error(client: TestClient) -> None:
    resp = client.post("/check", data={"code": "91110000600037341N", "scenario": "licensing"})
    assert resp.status_code == 400
    assert "代码无效" in resp.text
    assert "check character should be &#x27;L&#x27;, got &#x27;N&#x27;" in resp.text
    assert 'value="91110000600037341N"' in resp.text            # the form keeps what was typed


def test_missing_code_and_bad_scenario(client: TestClient) -> None:
    assert client.post("/check", data={"code": "", "scenario": "licensing"}).status_code == 400
    resp = client.post("/check", data={"code": "x", "scenario": "<b>nope</b>"})
    assert resp.status_code == 400 and "<b>nope</b>" not in resp.text
