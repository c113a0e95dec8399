"""Rule 11 end to end: a department key created without person rights gets the persons'
entries withheld by the real sandbox; the CLI never exits 0 for them but with the
fallback's code, and the same checks with a key that may see persons are denied."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _sandbox_support import DEPARTMENT, ENCRYPTION_KEY, admin

from credit_check._server import SandboxServer

_demo = pytest.importorskip("credit_check._server._demo")
SHOWCASE = _demo.SHOWCASE


def _key(sandbox: SandboxServer, allow_persons: bool) -> str:
    made = admin(sandbox, "POST", "/v1/admin/keys",
                 json={"department": DEPARTMENT, "allow_persons": allow_persons})
    return str(made["api_key"])


def _check(sandbox: SandboxServer, tmp_path: Path, key: str, subject: str, scenario: str,
           fallback: str = "review") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDIT_CHECK_")}
    env.update({
        "CREDIT_CHECK_BASE_URL": sandbox.base_url, "CREDIT_CHECK_API_KEY": key,
        "CREDIT_CHECK_DEPARTMENT": DEPARTMENT,
        "CREDIT_CHECK_DATA_DIR": str(tmp_path / key[:8]),
        "CREDIT_CHECK_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "CREDIT_CHECK_SERVICE_PUBLIC_KEY": sandbox.public_key,
        "CREDIT_CHECK_FALLBACK": fallback, "PYTHONIOENCODING": "utf-8",
    })
    return subprocess.run(
        [sys.executable, "-m", "credit_check._cli", "check", subject, "--scenario", scenario],
        capture_output=True, text=True, encoding="utf-8", errors="replace", env=env,
        cwd=tmp_path, timeout=120)


@pytest.mark.parametrize(("fallback", "code"), [("review", 4), ("allow", 4), ("deny", 5)])
def test_a_listed_person_withheld_from_the_key_exits_with_the_fallbacks_code(
    sandbox: SandboxServer, tmp_path: Path, fallback: str, code: int
) -> None:
    person = SHOWCASE["black_person"]
    proc = _check(sandbox, tmp_path, _key(sandbox, False), person, "subsidy", fallback)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "本部门密钥无权查看自然人信用信息" in proc.stdout
    assert person not in proc.stdout + proc.stderr


def test_a_withheld_legal_representative_named_by_the_service_is_review_in_market_access(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    org = SHOWCASE["court_defaulter_org"]
    proc = _check(sandbox, tmp_path, _key(sandbox, False), org, "market_access")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "the legal representative" in proc.stdout


def test_a_key_with_person_rights_sees_the_entries_and_is_denied(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    key = _key(sandbox, True)
    assert _check(sandbox, tmp_path, key, SHOWCASE["black_person"], "subsidy").returncode == 5
    assert _check(sandbox, tmp_path, key, SHOWCASE["court_defaulter_org"],
                  "market_access").returncode == 5
