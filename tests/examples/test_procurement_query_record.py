"""The procurement example's query record (查询记录) at bid opening: every check of the
tender — the bidder refused at submission included — with signed receipts, rendered in a
real headless Chromium (screenshot and an A4 PDF kept as test artefacts), its digest
verified by ``credit-check report verify`` and a changed copy refused."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _examples_support import TestClient, load_example
from test_service_hall_browser import CHROMIUM, Browser

from credit_check import Checker
from credit_check._cli import main

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
procurement = load_example("procurement")
TENDER = "CG-2026-077"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    b = Browser(profile)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def opened(checker: Checker, ids: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """A tender with a clean bid, a bid refused at submission, then the opening."""
    client = TestClient(procurement.build_app(checker, reports_dir=tmp_path / "tender-files"))
    ok = client.post(f"/tenders/{TENDER}/bids",
                     json={"bidder": {"uscc": ids["unknown_org"], "name": "甲公司"},
                           "price": "100"})
    assert ok.status_code == 200
    refused = client.post(f"/tenders/{TENDER}/bids",
                          json={"bidder": {"uscc": ids["court_defaulter_org"], "name": "乙公司"},
                                "price": "90"})
    assert refused.status_code == 403
    opening = client.post(f"/tenders/{TENDER}/opening")
    assert opening.status_code == 200, opening.text
    page = client.get(f"/tenders/{TENDER}/opening/query-record.html")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    path = tmp_path / "tender-files" / opening.json()["query_record"]
    return {"path": path, "html": page.text}


def test_the_query_record_holds_every_check_with_receipts_and_renders_in_chromium(
        opened: dict[str, Any], browser: Browser, ids: dict[str, str], tmp_path: Path) -> None:
    records = json.loads(re.search(r'id="records">(.*?)</script>', opened["html"], re.S)
                         .group(1))  # type: ignore[union-attr]
    # Two checks at submission (one refused at the gate) and one signed check at opening.
    kinds = [(r["subject"]["id"], r["outcome"], (r.get("receipt") or {}).get("kind"))
             for r in records]
    assert kinds == [(ids["unknown_org"], "allow", "snapshot"),
                     (ids["court_defaulter_org"], "deny", None),
                     (ids["unknown_org"], "allow", "service")]
    browser.call("Page.enable")
    browser.call("Page.navigate", url=opened["path"].as_uri())
    browser.wait_for("document.readyState === 'complete' && !!document.querySelector('#digest')")
    assert browser.js("document.documentElement.lang") == "zh-CN"
    assert browser.js("document.querySelector('#case-id').innerText") == TENDER
    assert browser.js("document.querySelector('#count').innerText") == "3"
    assert browser.js("document.querySelectorAll('table.records tbody tr').length") == 3
    text = browser.js("document.body.innerText")
    assert text.index("信用核查查询记录") < text.index("Credit check query record")
    assert "禁止 / deny" in text and "在线签名查询" in text and "本地快照" in text
    digest = browser.js("document.querySelector('#digest').innerText")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    assert shot.startswith(b"\x89PNG") and len(shot) > 10_000
    screenshot = tmp_path / "procurement_query_record.png"
    screenshot.write_bytes(shot)
    # Printed on A4 (210 × 297 mm) with the page's own print CSS.
    pdf = base64.b64decode(browser.call("Page.printToPDF", preferCSSPageSize=True)["data"])
    (tmp_path / "procurement_query_record.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF")
    boxes = re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", pdf)
    assert boxes, "no page in the PDF"
    # Points: A4 is 595.3 × 841.9.
    assert all(abs(float(w) - 595.3) < 1 and abs(float(h) - 841.9) < 1 for w, h in boxes)
    print(f"query record screenshot: {screenshot}")


def test_report_verify_accepts_the_file_and_refuses_a_changed_copy(
        opened: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "verify", str(opened["path"])]) == 0
    assert "digest verified" in capsys.readouterr().out
    changed = tmp_path / "changed.html"
    changed.write_text(opened["html"].replace('"outcome": "deny"', '"outcome": "allow"'),
                       encoding="utf-8")
    assert changed.read_text(encoding="utf-8") != opened["html"]
    assert main(["report", "verify", str(changed)]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_report_case_writes_json_and_csv_from_the_data_directory(
        opened: dict[str, Any], checker_options: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        ids: dict[str, str]) -> None:
    for name, value in checker_options.items():
        monkeypatch.setenv(f"CREDIT_CHECK_{name.upper()}", str(value))
    out = tmp_path / "record.json"
    assert main(["report", "case", TENDER, "--format", "json", "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["count"] == 3 and report["case_id"] == TENDER
    assert main(["report", "verify", str(out)]) == 0
    # Its receipts verify offline too.
    capsys.readouterr()
    assert main(["receipt", "verify", str(out), "--key",
                 checker_options["service_public_key"]]) == 0
    assert capsys.readouterr().out.count("凭证有效") == 2
    csv_out = tmp_path / "record.csv"
    assert main(["report", "case", TENDER, "--format", "csv", "--out", str(csv_out)]) == 0
    lines = csv_out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("time,kind,channel,operator") and len(lines) == 5
    assert lines[-1].endswith(report["digest"])
    assert main(["report", "case", "NO-SUCH-CASE", "--format", "csv"]) == 1
    assert "no records are kept" in capsys.readouterr().err
