"""``credit-check check-file`` against the real sandbox over loopback, as a subprocess: an
Excel file with bad rows gives exit 2 and a complete report (every row; the bad ones with
their masked error; the case id and scenario on each), written as CSV or .xlsx; a clean
batch exits with its most severe outcome; the progress bar shows on a terminal only; a
full disk mid-batch marks the rows whose records may be lost and still writes the report."""

from __future__ import annotations

import base64
import csv
import json
import os
import pty
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE, make_id_number

KEY = base64.b64encode(b"check-file-test-key-32-bytes-ok!").decode()
PERSON = SHOWCASE["black_person"]
MISTYPED_PERSON = make_id_number(random.Random(11))[:-1] + "0"
GOOD = SHOWCASE["unknown_org"]
DENIED = SHOWCASE["court_defaulter_org"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    server = SandboxServer(tmp_path_factory.mktemp("sb") / "sandbox.db", demo=True, port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def environment(server: SandboxServer, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_CHECK_")}
    env.update({"CREDIT_CHECK_BASE_URL": server.base_url,
                "CREDIT_CHECK_API_KEY": server.demo_key,
                "CREDIT_CHECK_DEPARTMENT": "市公共资源交易中心",
                "CREDIT_CHECK_DATA_DIR": str(data_dir),
                "CREDIT_CHECK_ENCRYPTION_KEY": KEY,
                "CREDIT_CHECK_SERVICE_PUBLIC_KEY": server.public_key,
                "CREDIT_CHECK_READY_TIMEOUT": "20", "PYTHONIOENCODING": "utf-8"})
    return env


def run(server: SandboxServer, tmp: Path, *args: str, **kw: Any
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "credit_check._cli", "check-file", *args],
                          capture_output=True, text=True, encoding="utf-8", cwd=tmp,
                          env=environment(server, tmp / "data"), timeout=120, **kw)


def workbook(path: Path, rows: list[list[Any]], header: list[str] | None = None) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "投标人"
    sheet.append(header or ["序号", "名称", "uscc"])
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


BIDDERS = [
    [1, "某某建设有限公司（虚构）", DENIED],                   # row 2: deny
    [2, "未上榜公司（虚构）", GOOD],                           # row 3: allow
    [3, "错码公司", GOOD[:-1] + ("0" if GOOD[-1] != "0" else "1")],  # row 4: bad check char
    [4, "张某", MISTYPED_PERSON],                              # row 5: a mistyped id number
    [5, "李某", 350100199001011237],                           # row 6: typed as a number
    [6, "空白", None],                                         # row 7: empty
    [7, "示例人", PERSON],                                     # row 8: a listed person
]


def assert_no_clear_person(*texts: str | bytes) -> None:
    for text in texts:
        data = text.encode() if isinstance(text, str) else text
        for secret in (PERSON, MISTYPED_PERSON, "350100199001011237"):
            assert secret.encode() not in data


@pytest.mark.parametrize("suffix", [".xlsx", ".csv"])
def test_an_xlsx_with_bad_rows_exits_2_with_a_complete_report(
        sandbox: SandboxServer, tmp_path: Path, suffix: str) -> None:
    source = workbook(tmp_path / "bidders.xlsx", BIDDERS)
    out = tmp_path / f"report{suffix}"
    done = run(sandbox, tmp_path, str(source), "--scenario", "bidding", "--column", "uscc",
               "--case-id", "ZB-2026-7", "--out", str(out))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    if suffix == ".xlsx":
        sheet = openpyxl.load_workbook(out, read_only=True).worksheets[0]
        values = [[("" if v is None else str(v)) for v in r]
                  for r in sheet.iter_rows(values_only=True)]
        report = [dict(zip(values[0], r, strict=True)) for r in values[1:]]
    else:
        with out.open(encoding="utf-8-sig", newline="") as fh:
            report = list(csv.DictReader(fh))
    assert [r["row"] for r in report] == ["2", "3", "4", "5", "6", "7", "8"]
    by_row = {r["row"]: r for r in report}
    assert {r["scenario"] for r in report} == {"bidding"}
    assert {r["case_id"] for r in report} == {"ZB-2026-7"}
    assert (by_row["2"]["outcome"], by_row["3"]["outcome"], by_row["8"]["outcome"]) == (
        "deny", "allow", "deny")
    assert by_row["2"]["decision_id"] and "P-001" in by_row["2"]["measures"]
    assert by_row["8"]["id"] == PERSON[:6] + "********" + PERSON[-4:]
    for row, needle in (("4", "check character"), ("5", "check character"),
                        ("6", "holds a number"), ("7", "empty")):
        assert by_row[row]["outcome"] == "invalid" and needle in by_row[row]["error"], row
        assert by_row[row]["decision_id"] == ""
    assert by_row["5"]["id"] == MISTYPED_PERSON[:6] + "********" + MISTYPED_PERSON[-4:]
    assert_no_clear_person(out.read_bytes(), done.stdout, done.stderr)
    # The summary says what happened, and that the batch is incomplete.
    assert "7 rows" in done.stdout and "deny 2" in done.stdout and "invalid 4" in done.stdout
    assert "4 rows could not be checked" in done.stdout and "incomplete" in done.stdout


def test_a_clean_batch_exits_with_its_most_severe_outcome(sandbox: SandboxServer,
                                                          tmp_path: Path) -> None:
    source = workbook(tmp_path / "ok.xlsx", [[1, "甲", GOOD], [2, "乙", DENIED]])
    done = run(sandbox, tmp_path, str(source), "--scenario", "procurement", "--column", "uscc",
               "--json")
    assert done.returncode == 5, done.stderr
    summary = json.loads(done.stdout)
    assert summary["counts"] == {"allow": 1, "deny": 1} and summary["not_checked"] == 0
    assert (summary["outcome"], summary["exit_code"], summary["scenario"]) == (
        "deny", 5, "procurement")
    source.write_text(f"id\n{GOOD}\n", encoding="utf-8")  # CSV under the same name
    assert run(sandbox, tmp_path, str(source), "--scenario", "procurement").returncode == 0


def _on_a_terminal(server: SandboxServer, tmp: Path, *args: str) -> tuple[int, str]:
    """Run with stderr on a pseudo-terminal; (exit code, what the terminal showed)."""
    master, slave = pty.openpty()
    env = environment(server, tmp / "data") | {"TERM": "xterm-256color", "COLUMNS": "100"}
    proc = subprocess.Popen([sys.executable, "-m", "credit_check._cli", "check-file", *args],
                            stdout=subprocess.DEVNULL, stderr=slave, cwd=tmp, env=env)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return proc.wait(timeout=120), shown.decode("utf-8", "replace")


def test_the_progress_bar_shows_on_a_terminal_only(sandbox: SandboxServer,
                                                   tmp_path: Path) -> None:
    source = tmp_path / "many.csv"
    source.write_text("id\n" + f"{GOOD}\n" * 1200, encoding="utf-8")
    code, shown = _on_a_terminal(sandbox, tmp_path, str(source), "--scenario", "licensing")
    assert code == 0 and "核查 checking" in shown and "1200" in shown
    code, shown = _on_a_terminal(sandbox, tmp_path, str(source), "--scenario", "licensing",
                                 "--quiet")
    assert code == 0 and shown == ""
    piped = run(sandbox, tmp_path, str(source), "--scenario", "licensing")
    assert piped.returncode == 0 and piped.stderr == ""
    assert "1200 rows" in piped.stdout  # the summary is always printed


@pytest.mark.parametrize(("content", "args", "needle"), [
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100, [], "old Excel (.xls)"),
    (b"PK\x03\x04 not really a workbook", [], "not a readable .xlsx"),
    (None, ["--sheet", "Sheet9"], "no sheet 'Sheet9'"),
    (None, ["--column", "id"], "no column 'id'"),
    (b"id\n91350100M000100Y43\n", ["--sheet", "x"], "--sheet is for Excel files"),
])
def test_a_file_that_cannot_be_read_is_a_clear_error(sandbox: SandboxServer, tmp_path: Path,
                                                     content: bytes | None, args: list[str],
                                                     needle: str) -> None:
    source = tmp_path / "in.xlsx"
    if content is None:
        workbook(source, [[1, "甲", GOOD]])
    else:
        source.write_bytes(content)
    done = run(sandbox, tmp_path, str(source), "--scenario", "bidding", "--column",
               args[1] if args[:1] == ["--column"] else "uscc",
               *([] if args[:1] == ["--column"] else args))
    assert done.returncode == 2 and needle in done.stderr, done.stderr
    assert done.stderr.startswith("credit-check: error: ") and "Traceback" not in done.stderr
