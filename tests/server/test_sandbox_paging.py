"""The admin read calls' parameters over HTTP: GET /v1/admin/feedback in pages (a default
page size, a cursor, a stable order), GET /v1/admin/stats for a month, a period or one
department, with the figures read from signed records as sent, and the showcase subjects
of a demo sandbox; every bad parameter is a 400 naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _sandbox_app_support import Sandbox, TestClient, assert_problem, feedback_records

from credit_check._crypto import feedback_key, record_hmac
from credit_check._server import create_app, open_sandbox
from credit_check._server._demo import SHOWCASE
from credit_check._server._paging import DEFAULT_PAGE, MAX_PAGE


def _sandbox(path: Path, demo: bool) -> Iterator[Sandbox]:
    store, signer, admin_key, demo_key = open_sandbox(path, demo=demo)
    with TestClient(create_app(store, signer, admin_key), raise_server_exceptions=False) as c:
        yield Sandbox(c, store, signer, admin_key, demo_key)
    store.close()


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    yield from _sandbox(tmp_path / "s.db", demo=True)


def send(sb: Sandbox, records: list[dict[str, Any]]) -> None:
    for start in range(0, len(records), 500):
        resp = sb.post("/v1/feedback", json={"records": records[start : start + 500]})
        assert resp.status_code == 200 and not resp.json()["rejected"], resp.text


def test_feedback_comes_in_pages_of_a_default_size_with_a_cursor(sb: Sandbox) -> None:
    records = feedback_records(sb.demo_key, DEFAULT_PAGE + 5)
    send(sb, records)
    first = sb.admin("GET", "/v1/admin/feedback").json()
    assert len(first["records"]) == DEFAULT_PAGE and first["has_more"] is True
    rest = sb.admin("GET", "/v1/admin/feedback",
                    params={"cursor": first["next_cursor"]}).json()
    assert len(rest["records"]) == 5 and rest["has_more"] is False
    got = [r["record_id"] for r in first["records"] + rest["records"]]
    assert got == [r["record_id"] for r in records]  # every record once, in arrival order


def test_a_page_size_and_a_kept_cursor_read_every_record_once(sb: Sandbox) -> None:
    send(sb, feedback_records(sb.demo_key, 7))
    seen: list[str] = []
    cursor: str | None = None
    calls = 0
    while True:
        params = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        page = sb.admin("GET", "/v1/admin/feedback", params=params).json()
        seen += [r["record_id"] for r in page["records"]]
        cursor = page["next_cursor"]
        calls += 1
        if not page["has_more"]:
            break
    assert len(seen) == len(set(seen)) == 7 and calls == 3
    # Records that arrive later are found from the last cursor.
    later = feedback_records(sb.demo_key, 9)[7:]
    send(sb, later)
    page = sb.admin("GET", "/v1/admin/feedback", params={"cursor": cursor}).json()
    assert [r["record_id"] for r in page["records"]] == [r["record_id"] for r in later]
    empty = sb.admin("GET", "/v1/admin/feedback", params={"since": "2999-01-01"}).json()
    assert empty == {"records": [], "next_cursor": None, "has_more": False}


@pytest.mark.parametrize(("params", "needle"), [
    ({"limit": "0"}, "limit"), ({"limit": str(MAX_PAGE + 1)}, "limit"),
    ({"limit": "ten"}, "limit"), ({"limit": "-5"}, "limit"), ({"cursor": "abc"}, "cursor"),
    ({"cursor": "-1"}, "cursor"), ({"cursor": "9" * 40}, "cursor"),
])
def test_a_bad_page_parameter_is_a_400_naming_it(sb: Sandbox, params: dict[str, str],
                                                 needle: str) -> None:
    assert_problem(sb.admin("GET", "/v1/admin/feedback", params=params), 400, needle)


def _signed(sb: Sandbox, record: dict[str, Any], **changes: Any) -> dict[str, Any]:
    record = {**record, **changes}
    record.pop("hmac", None)
    record["hmac"] = record_hmac(feedback_key(sb.demo_key), record)
    return record


def test_stats_read_region_degraded_and_month_from_the_records_sent(sb: Sandbox) -> None:
    base = feedback_records(sb.demo_key, 4)
    tx = base[0]["transaction"]
    send(sb, [
        _signed(sb, base[0], created_at="2026-11-02T09:00:00+08:00",
                transaction={**tx, "region": "350100"}),
        _signed(sb, base[1], created_at="2026-11-30T23:30:00+08:00", degraded=True,
                outcome="review", transaction={**tx, "region": "350100"}),
        _signed(sb, base[2], created_at="2026-11-30T16:30:00+00:00"),  # 12-01 in CST
        _signed(sb, base[3], created_at="2026-10-31T12:00:00+08:00"),
    ])
    november = sb.admin("GET", "/v1/admin/stats", params={"month": "2026-11"}).json()
    assert november["period"] == {"since": "2026-11-01", "until": "2026-12-01",
                                  "department": None}
    assert november["total"]["checks"] == 2 and november["total"]["degraded"] == 1
    assert {r["region"]: r["checks"] for r in november["by_region"]} == {"350100": 2}
    assert {r["outcome"]: r["degraded"] for r in november["by_outcome"]} == {
        "deny": 0, "review": 1}
    assert {r["list_code"]: r["checks"] for r in november["by_list"]} == {
        "court.judgment_defaulter": 1}
    assert {r["measure"]: r["checks"] for r in november["by_measure"]} == {"P-001": 1}
    period = sb.admin("GET", "/v1/admin/stats",
                      params={"since": "2026-11-01", "until": "2026-12-02"}).json()
    assert period["total"]["checks"] == 3
    other = sb.admin("GET", "/v1/admin/stats", params={"department": "住建局"}).json()
    assert other["total"]["checks"] == 0 and other["by_department"] == []
    assert sb.admin("GET", "/v1/admin/stats").json()["total"]["checks"] == 4


@pytest.mark.parametrize(("params", "needle"), [
    ({"month": "2026-13"}, "month"), ({"month": "2026/11"}, "month"),
    ({"month": "November"}, "month"), ({"month": "9999-12"}, "month"),
    ({"month": "0000-01"}, "month"), ({"since": "2026-02-30"}, "since"),
    ({"until": "tomorrow"}, "until"), ({"since": "2026-11-05", "until": "2026-11-01"}, "since"),
    ({"month": "2026-11", "since": "2026-11-01"}, "either month"),
    ({"department": "x" * 300}, "department"),
])
def test_a_bad_stats_parameter_is_a_400_naming_it(sb: Sandbox, params: dict[str, str],
                                                  needle: str) -> None:
    assert_problem(sb.admin("GET", "/v1/admin/stats", params=params), 400, needle)


def test_the_year_end_month_ends_at_the_next_january(sb: Sandbox) -> None:
    stats = sb.admin("GET", "/v1/admin/stats", params={"month": "2026-12"}).json()
    assert stats["period"]["until"] == "2027-01-01"


def test_a_demo_sandbox_lists_its_showcase_subjects(sb: Sandbox, tmp_path: Path) -> None:
    resp = sb.admin("GET", "/v1/admin/showcase")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["fictional"] is True
    subjects = {s["name"]: s for s in body["subjects"]}
    assert {n: s["id"] for n, s in subjects.items()} == SHOWCASE
    assert subjects["court_defaulter_org"]["entries"] == [
        {"list_code": "court.judgment_defaulter", "status": "active"}]
    assert subjects["black_person"]["kind"] == "person"
    assert_problem(sb.get("/v1/admin/showcase"), 403)
    for plain in _sandbox(tmp_path / "plain.db", demo=False):
        assert_problem(plain.admin("GET", "/v1/admin/showcase"), 404, "--demo")
