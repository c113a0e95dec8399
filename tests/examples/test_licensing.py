"""examples/licensing: the Django view decorator against the real sandbox, in a subprocess
(Django settings are process-global and other tests configure Django too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from _examples_support import ENCRYPTION_KEY

CHILD = Path(__file__).with_name("_licensing_child.py")


def run_child(sandbox: Any, data_dir: Path, *codes: str) -> list[dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDIT_CHECK_", "DJANGO_"))}
    env.update({
        "CREDIT_CHECK_BASE_URL": sandbox.base_url, "CREDIT_CHECK_API_KEY": sandbox.demo_key,
        "CREDIT_CHECK_DEPARTMENT": "示范市行政审批局", "CREDIT_CHECK_DATA_DIR": str(data_dir),
        "CREDIT_CHECK_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "CREDIT_CHECK_SERVICE_PUBLIC_KEY": sandbox.public_key,
    })
    proc = subprocess.run([sys.executable, "-W", "error", str(CHILD), *codes], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_licensing_outcomes(sandbox: Any, ids: dict[str, str], feedback: Any,
                            tmp_path: Path) -> None:
    health, review, restrict, green = run_child(
        sandbox, tmp_path / "credit-check",
        ids["safety_violator_org"], ids["watch_org"], ids["a_grade_org"])
    assert health["health"]["ready"] is True

    assert review["status"] == 202
    assert review["header"].startswith("review; decision=")
    assert review["body"]["status"] == "pending_review"
    assert [m["code"] for m in review["body"]["measures"]] == ["P-004"]

    assert restrict["status"] == 201
    assert restrict["header"].startswith("restrict; decision=")
    assert restrict["body"]["tolerance_acceptance"] == {"allowed": False}
    assert [m["code"] for m in restrict["body"]["measures"]] == ["P-005"]

    assert green["status"] == 201
    assert green["header"].startswith("green_channel; decision=")
    assert green["body"]["track"] == "green_channel"
    assert green["body"]["tolerance_acceptance"] == {"allowed": True, "commitment_days": 30}

    # The child's checker delivered its decisions on exit (atexit close).
    decisions = {r["decision_id"]: r for r in feedback() if r["kind"] == "decision"}
    for answer in (review, restrict, green):
        record = decisions[answer["body"]["decision_id"]]
        assert record["outcome"] == answer["body"]["credit"]
        assert record["transaction"]["scenario"] == "licensing"
        assert record["transaction"]["case_id"] == answer["body"]["case_no"]
        assert record["transaction"]["item_code"] == "11350100MB0000001X4000117001"


def test_invalid_code_is_400(sandbox: Any, tmp_path: Path) -> None:
    _, answer = run_child(sandbox, tmp_path / "credit-check", "91110000600037341N")
    assert answer["status"] == 400
    assert answer["body"]["field"] == "form:uscc"
    assert answer["body"]["problem"] == "check_character"
