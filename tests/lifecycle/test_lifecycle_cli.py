"""``credit-check cases`` and ``credit-check commitments`` on a data directory that a
Checker followed cases in: what changed, what rests on a wrong entry, the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _lifecycle_support import ENCRYPTION_KEY, MakeChecker, admin, list_subject

from credit_check import Outcome, Transaction
from credit_check._cli import main
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE


@pytest.fixture
def followed(make_checker: MakeChecker, sandbox: SandboxServer, options: dict[str, Any],
             monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    checker = make_checker()
    green = checker.check(SHOWCASE["a_grade_org"],
                          Transaction(scenario="licensing", case_id="XK-CLI-1"))
    deny = checker.check(SHOWCASE["court_defaulter_org"],
                         Transaction(scenario="procurement", case_id="CG-CLI-2"))
    commitment = checker.commit(green.decision_id, items=["设备清单"], working_days=5)
    assert checker.sync()
    list_subject(sandbox, "cli-mid-case", SHOWCASE["a_grade_org"])
    entry_id = admin(sandbox, "GET", f"/v1/subjects/{SHOWCASE['court_defaulter_org']}"
                     )["entries"][0]["entry_id"]
    admin(sandbox, "POST", f"/v1/admin/entries/{entry_id}/status",
          json={"status": "removed", "reason": "objection_upheld_wrong"})
    assert checker.sync()
    checker.close()
    monkeypatch.setenv("CREDIT_CHECK_DATA_DIR", str(options["data_dir"]))
    monkeypatch.setenv("CREDIT_CHECK_ENCRYPTION_KEY", ENCRYPTION_KEY)
    return {"green": green.decision_id, "deny": deny.decision_id, "entry": entry_id,
            "commitment": commitment.commitment_id}


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cases_changed_and_lift(followed: dict[str, str],
                                capsys: pytest.CaptureFixture[str]) -> None:
    (changed,) = run_json(capsys, "cases", "--changed")["events"]
    assert (changed["case_id"], changed["decision_id"], changed["previous"],
            changed["outcome"]) == ("XK-CLI-1", followed["green"], "green_channel", "review")
    (lift,) = run_json(capsys, "cases", "--lift")["events"]
    assert (lift["case_id"], lift["decision_id"], lift["lifted_entries"]) == (
        "CG-CLI-2", followed["deny"], [followed["entry"]])
    assert (lift["previous"], lift["outcome"]) == ("deny", "allow")
    assert lift["subject"] == SHOWCASE["court_defaulter_org"]
    watched = run_json(capsys, "cases")
    assert {(w["case_id"], w["outcome"]) for w in watched["cases"]} == {
        ("XK-CLI-1", Outcome.REVIEW.value), ("CG-CLI-2", Outcome.ALLOW.value)}
    assert watched["counts"]["watched"] == 2 and watched["counts"]["commitments_open"] == 1


def test_commitments_of_a_subject(followed: dict[str, str],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    (c,) = run_json(capsys, "commitments", "--subject", SHOWCASE["a_grade_org"])["commitments"]
    assert (c["commitment_id"], c["state"], c["outstanding"]) == (
        followed["commitment"], "open", ["设备清单"])
    assert run_json(capsys, "commitments", "--subject",
                    SHOWCASE["court_defaulter_org"])["commitments"] == []
    assert main(["commitments", "--subject", "91110000600037341N"]) == 2
    assert "check character" in capsys.readouterr().err


def test_the_commands_as_a_subprocess_print_lines_and_need_the_data_dir(
        followed: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ}
    out = subprocess.run([sys.executable, "-m", "credit_check._cli", "cases", "--changed"],
                         env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "case XK-CLI-1" in out and "green_channel -> review" in out
    out = subprocess.run([sys.executable, "-m", "credit_check._cli", "commitments"],
                         env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    assert followed["commitment"] in out and "outstanding: 设备清单" in out
    env["CREDIT_CHECK_DATA_DIR"] = str(tmp_path / "nowhere")
    done = subprocess.run([sys.executable, "-m", "credit_check._cli", "cases"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "CREDIT_CHECK_DATA_DIR" in done.stderr
