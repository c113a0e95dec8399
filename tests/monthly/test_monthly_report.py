"""``credit-check report monthly``: a real sandbox over loopback receives a month of
feedback from a real Checker (and one department's hand-signed outcome for a case never
checked); the command, run as a subprocess, writes the HTML and the Excel report per
department from the admin API, with the figures, the coverage and the unchecked case —
whose embedded id number is masked. Bad arguments, a refused key and an unreachable
service each give a clear message and their exit code."""

from __future__ import annotations

import base64
import datetime as dt
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from credit_check import Checker, Subject, Transaction
from credit_check._crypto import feedback_key, record_hmac
from credit_check._models import CST
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE, make_id_number

KEY = base64.b64encode(b"monthly-report-key-32-bytes-long").decode()
DEPARTMENT = "市公共资源交易中心"
OTHER = "市住房和城乡建设局"
HIDDEN_ID = make_id_number(random.Random(7))
NOVEMBER = dt.datetime(2026, 11, 10, 10, 0, tzinfo=CST)


def run_cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_CHECK_")}
    environ.update(env, PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, "-m", "credit_check._cli", "report", "monthly",
                           *args], capture_output=True, text=True, encoding="utf-8",
                          env=environ, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    root = tmp_path_factory.mktemp("monthly")
    server = SandboxServer(root / "sandbox.db", demo=True, port=0)
    server.start()
    try:
        _feed_a_month(server, root)
        yield server
    finally:
        server.stop()


def _feed_a_month(server: SandboxServer, root: Path) -> None:
    checker = Checker(base_url=server.base_url, api_key=server.demo_key,
                      department=DEPARTMENT, data_dir=root / "sdk", encryption_key=KEY,
                      service_public_key=server.public_key, clock=lambda: NOVEMBER,
                      start=False)
    try:
        assert checker.sync(), checker.status().last_error
        tx = Transaction(scenario="procurement", case_id="CG-2026-1101", region="350100")
        denied = checker.check(Subject.organization(SHOWCASE["court_defaulter_org"]), tx)
        checker.check(Subject.organization(SHOWCASE["unknown_org"]), tx)
        checker.check(Subject.organization(SHOWCASE["a_grade_org"]),
                      Transaction(scenario="licensing", case_id="XK-2026-0042"))
        checker.report(denied.decision_id, result="rejected", note="投标被拒绝")
        assert checker._outbox is not None and checker._outbox.sender.flush(20)
    finally:
        checker.close()
    # Another department reports the outcome of a case that no check ever named.
    made = requests.post(server.base_url + "/v1/admin/keys", timeout=10,
                         headers={"Authorization": f"Bearer {server.admin_key}"},
                         json={"department": OTHER}).json()
    record: dict[str, Any] = {
        "record_id": "a" * 32, "kind": "outcome", "decision_id": "b" * 32,
        "department": OTHER,
        "transaction": {"scenario": "subsidy", "case_id": f"BZ-{HIDDEN_ID}"},
        "subject": {"kind": "organization", "id": SHOWCASE["clean_3y_org"]},
        "outcome": "allow", "created_at": "2026-11-20T15:00:00+08:00", "result": "approved"}
    record["hmac"] = record_hmac(feedback_key(made["api_key"]), record)
    resp = requests.post(server.base_url + "/v1/feedback", json={"records": [record]},
                         headers={"Authorization": f"Bearer {made['api_key']}"}, timeout=10)
    assert resp.json()["accepted"] == [record["record_id"]], resp.text


def env_of(server: SandboxServer) -> dict[str, str]:
    return {"CREDIT_CHECK_BASE_URL": server.base_url,
            "CREDIT_CHECK_ADMIN_KEY": server.admin_key}


def test_the_html_report_shows_each_department_with_its_coverage(sandbox: SandboxServer,
                                                                tmp_path: Path) -> None:
    done = run_cli(tmp_path, "--month", "2026-11", **env_of(sandbox))
    assert done.returncode == 0, done.stderr
    assert "3 checks" in done.stdout and "2 cases handled" in done.stdout
    page = (tmp_path / "credit-check-monthly-2026-11.html").read_text("utf-8")
    assert page.index("月度监测报告") < page.index("Monthly monitoring report")
    assert "2026年12月15日前" in page and "2026年11月" in page
    for text in (DEPARTMENT, OTHER, "失信被执行人", "限制参加政府采购活动和招标投标",
                 "政府采购", "350100", "核查覆盖率"):
        assert text in page, text
    assert "CG-2026-1101" not in page  # checked cases are counted, not listed
    # Two cases handled (one checked): 50.0 %; the other department's case is listed,
    # the id number inside its case id masked.
    assert "50.0%" in page
    assert f"BZ-{HIDDEN_ID[:6]}********{HIDDEN_ID[-4:]}" in page and HIDDEN_ID not in page
    assert page.count('<section class="department">') == 2
    assert "@page { size: A4" in page


def test_the_xlsx_report_has_a_sheet_per_breakdown_with_every_department(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    import openpyxl

    out = tmp_path / "nov.xlsx"
    done = run_cli(tmp_path, "--month", "2026-11", "--format", "xlsx", "--out", str(out),
                   "--json", **env_of(sandbox))
    assert done.returncode == 0, done.stderr
    assert '"due_before": "2026-12-15"' in done.stdout
    book = openpyxl.load_workbook(out, read_only=True)
    names = book.sheetnames
    assert names == ["总览 Overview", "结果 Outcomes", "场景 Scenarios", "名单 Lists",
                     "措施 Measures", "地区 Regions", "每日 Days", "记录 Records",
                     "未核查办件 Unchecked"]
    rows = {name: [list(r) for r in book[name].iter_rows(values_only=True)] for name in names}
    overview = rows["总览 Overview"]
    assert ["核查次数", "checks", 3] in [r[:3] for r in overview]
    assert ["办件数", "cases handled", 2] in [r[:3] for r in overview]
    outcomes = rows["结果 Outcomes"]
    scopes = {r[0] for r in outcomes[1:]}
    assert scopes == {"全部部门 all", DEPARTMENT}  # the other department made no check
    assert any(r[0] == DEPARTMENT and r[1].endswith("deny") and r[2] == 1 for r in outcomes)
    unchecked = rows["未核查办件 Unchecked"]
    assert [r[1:3] for r in unchecked[1:]] == [[OTHER, f"BZ-{HIDDEN_ID[:6]}********"
                                                f"{HIDDEN_ID[-4:]}"]]
    assert HIDDEN_ID.encode() not in out.read_bytes()
    book.close()


def test_a_month_without_records_still_gives_a_report(sandbox: SandboxServer,
                                                      tmp_path: Path) -> None:
    done = run_cli(tmp_path, "--month", "2025-01", "--out", "empty.html", **env_of(sandbox))
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "empty.html").read_text("utf-8")
    assert "无 / none" in page and page.count('<section class="department">') == 0


@pytest.mark.parametrize(("args", "env", "code", "needle"), [
    (["--month", "2026-13"], {}, 2, "--month must be YYYY-MM"),
    (["--format", "pdf"], {}, 2, "Run 'credit-check report monthly --help'"),
    (["--out", "nowhere/r.html"], {}, 2, "no directory"),
    ([], {"CREDIT_CHECK_ADMIN_KEY": "wrong"}, 2, "refused the admin key"),
    ([], {"CREDIT_CHECK_ADMIN_KEY": ""}, 2, "CREDIT_CHECK_ADMIN_KEY"),
    ([], {"CREDIT_CHECK_BASE_URL": ""}, 2, "CREDIT_CHECK_BASE_URL"),
    ([], {"CREDIT_CHECK_BASE_URL": "http://127.0.0.1:9"}, 1, "cannot reach"),
])
def test_bad_arguments_and_failures_are_clear(sandbox: SandboxServer, tmp_path: Path,
                                              args: list[str], env: dict[str, str],
                                              code: int, needle: str) -> None:
    done = run_cli(tmp_path, *args, **(env_of(sandbox) | env))
    assert done.returncode == code, (done.returncode, done.stderr)
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.glob("*.html"))
