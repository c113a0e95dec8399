"""``credit-check outbox status|flush``: output, exit codes, missing settings."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import responses
from _outbox_child import API_KEY, CIPHER_KEY, import_all, make_outbox, write

from credit_check._cli import main

BASE = "http://list.test"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CREDIT_CHECK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CREDIT_CHECK_BASE_URL", BASE)
    monkeypatch.setenv("CREDIT_CHECK_API_KEY", API_KEY)
    monkeypatch.setenv("CREDIT_CHECK_ENCRYPTION_KEY", base64.b64encode(CIPHER_KEY).decode())
    return tmp_path


@pytest.fixture
def filled(env: Path) -> Path:
    with make_outbox(env) as outbox:
        for i in range(3):
            write(outbox, i)
        claimed = import_all(outbox)
        outbox.store.dead_letter([(claimed[0].seq, "hmac does not verify")])
    return env


@pytest.fixture
def service() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def accept(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
    ids = [r["record_id"] for r in json.loads(request.body or b"{}")["records"]]
    return 200, {}, json.dumps({"accepted": ids, "duplicates": [], "rejected": []})


def test_status_shows_counts_and_dead_letter_reasons(
    filled: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["outbox", "status"]) == 0
    out = capsys.readouterr().out
    assert "pending:       2" in out and "dead-lettered: 1" in out
    assert "hmac does not verify" in out and "oldest" in out


def test_status_as_json(filled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["outbox", "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["pending"], data["delivered"], data["dead_lettered"], data["full"]) == (
        2, 0, 1, False)
    assert data["dead_reasons"] == [{"reason": "hmac does not verify", "count": 1}]


def test_status_without_an_outbox_says_where_it_looked(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["outbox", "status"]) == 2
    err = capsys.readouterr().err
    assert "CREDIT_CHECK_DATA_DIR" in err and "Traceback" not in err


def test_flush_delivers_and_exits_0(
    filled: Path, service: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    service.add_callback(responses.POST, BASE + "/v1/feedback", callback=accept)
    assert main(["outbox", "flush", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["flushed"] and data["pending"] == 0 and data["delivered"] == 2


def test_flush_exits_1_when_records_remain(
    filled: Path, service: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    service.add(responses.POST, BASE + "/v1/feedback", status=503, json={"title": "down"})
    assert main(["outbox", "flush", "--timeout", "0.5"]) == 1
    assert "records remain" in capsys.readouterr().out


@pytest.mark.parametrize("missing", ["CREDIT_CHECK_BASE_URL", "CREDIT_CHECK_API_KEY",
                                     "CREDIT_CHECK_ENCRYPTION_KEY"])
def test_flush_with_a_missing_setting_exits_2_naming_it(
    filled: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    missing: str,
) -> None:
    monkeypatch.delenv(missing)
    assert main(["outbox", "flush"]) == 2
    err = capsys.readouterr().err
    assert missing in err and "Traceback" not in err
    assert not (filled / "encryption.key").exists()  # never generates a key it cannot use
