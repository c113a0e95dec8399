"""check-file on a full file system (a small tmpfs; root only): the rows are still decided,
the batch goes on, every row whose feedback record may be lost says so in the report, and
the command exits 2 — an incomplete batch is never reported as done."""

from __future__ import annotations

import base64
import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from _small_fs import fill, mounted_tmpfs

from credit_check import Checker, _cli_check
from credit_check._cli import main
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE

KEY = base64.b64encode(b"check-file-disk-full-32-bytes-ok").decode()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    yield from mounted_tmpfs(tmp_path, "the other disk-full tests run instead")


def test_a_full_disk_mid_batch_marks_the_rows_and_exits_2(
        tmp_path: Path, small_fs: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    server = SandboxServer(tmp_path / "sandbox.db", demo=True, port=0)
    server.start()
    try:
        checker = Checker(base_url=server.base_url, api_key=server.demo_key,
                          department="市公共资源交易中心", data_dir=small_fs / "sdk",
                          encryption_key=KEY, service_public_key=server.public_key,
                          start=False)
        assert checker.sync(), checker.status().last_error
        fill(small_fs)
        # The command's own way of opening a checker, given this one (on the full disk).
        monkeypatch.setattr(_cli_check, "_open_checker", lambda: checker)
        source = tmp_path / "bidders.csv"
        source.write_text("id\n" + f"{SHOWCASE['court_defaulter_org']}\n" * 600, "utf-8")
        out = tmp_path / "report.csv"
        code = main(["check-file", str(source), "--scenario", "bidding", "--out", str(out),
                     "--quiet"])
    finally:
        server.stop()
    assert code == 2
    with out.open(encoding="utf-8-sig", newline="") as fh:
        report = list(csv.DictReader(fh))
    assert len(report) == 600 and {r["outcome"] for r in report} == {"deny"}
    lost = [r for r in report if r["error"]]
    assert lost and all("may not be written" in r["error"] and r["decision_id"] for r in lost)
    assert "could not be checked" in capsys.readouterr().out
