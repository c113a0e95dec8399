"""The README's "Use it" snippet, run as written against the real sandbox on a fresh data
dir: the court defaulter is DENIED on the first check (which waits for the first
catalogue), not decided degraded on the fallback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from _sandbox_support import DEPARTMENT, ENCRYPTION_KEY

from credit_check import Outcome
from credit_check._server import SandboxServer

README = Path(__file__).resolve().parents[2] / "README.md"


def _snippet() -> str:
    text = README.read_text("utf-8")
    section = text.split("## Use it", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no python block under '## Use it'"
    return match.group(1)


def test_the_readme_snippet_denies_the_court_defaulter_on_a_fresh_data_dir(
    sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, value in {
        "BASE_URL": sandbox.base_url, "API_KEY": sandbox.demo_key, "DEPARTMENT": DEPARTMENT,
        "DATA_DIR": str(tmp_path / "fresh"), "ENCRYPTION_KEY": ENCRYPTION_KEY,
        "SERVICE_PUBLIC_KEY": sandbox.public_key,
    }.items():
        monkeypatch.setenv(f"CREDIT_CHECK_{name}", value)
    assert not (tmp_path / "fresh").exists()
    namespace: dict[str, object] = {}
    exec(compile(_snippet(), str(README), "exec"), namespace)
    d = namespace["d"]
    assert d.outcome is Outcome.DENY and not d.degraded  # type: ignore[attr-defined]
    assert namespace["group"].outcome is Outcome.DENY  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert "court.judgment_defaulter" in out and out.endswith("deny\n")
