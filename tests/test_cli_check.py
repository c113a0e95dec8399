"""``credit-check check`` on what the service withholds (rule 11): a person withheld from a
key without person rights exits with the fallback's code, never 0 — against the scripted
v1.1 service, in process (the real sandbox's version is in tests/integration)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import responses
from _fake_service import BASE, PERSON, FakeService, entry

from credit_check._cli import main

KEY = base64.b64encode(b"c" * 32).decode()


@pytest.fixture
def service() -> Iterator[FakeService]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield FakeService(rsps)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "BASE_URL": BASE, "API_KEY": "dept-key", "DEPARTMENT": "市财政局",
        "DATA_DIR": str(tmp_path / "data"), "ENCRYPTION_KEY": KEY, "FEEDBACK": "false",
        "READY_TIMEOUT": "30",
    }.items():
        monkeypatch.setenv(f"CREDIT_CHECK_{name}", value)


@pytest.mark.parametrize(("fallback", "code"), [("review", 4), ("allow", 4), ("deny", 5)])
@pytest.mark.usefixtures("env")
def test_a_withheld_person_exits_with_the_fallbacks_code_at_least_review(
    service: FakeService, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    fallback: str, code: int,
) -> None:
    monkeypatch.setenv("CREDIT_CHECK_FALLBACK", fallback)
    service.add(entry(PERSON, subject_kind="person"))
    service.allow_persons = False
    assert main(["check", PERSON, "--scenario", "procurement"]) == code
    out = capsys.readouterr().out
    assert "本部门密钥无权查看自然人信用信息" in out and "DEGRADED" in out
    assert PERSON not in out


@pytest.mark.usefixtures("env")
def test_the_same_person_shown_to_a_key_with_person_rights_is_denied(
    service: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    service.add(entry(PERSON, subject_kind="person"))
    assert main(["check", PERSON, "--scenario", "procurement"]) == 5
    assert "DEGRADED" not in capsys.readouterr().out
