"""Check receipts (查询凭证, DESIGN §9.4) end to end: the real sandbox signs, the Checker
verifies and records, ``credit-check receipt verify`` checks them offline."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from _sandbox_support import MakeChecker

from credit_check import (
    ServiceReceipt,
    SnapshotReceipt,
    Subject,
    Transaction,
)
from credit_check._cli import main
from credit_check._crypto import Signer
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE

DENIED = SHOWCASE["court_defaulter_org"]
CLEAN = SHOWCASE["clean_recent_org"]
PERSON = SHOWCASE["black_person"]
OTHER_PERSON = SHOWCASE["court_defaulter_rep"]
TENDER = Transaction(scenario="procurement", case_id="CG-2026-0042")


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["receipt", "verify", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_check_many_online_gives_every_subject_a_signed_receipt_that_verifies_offline(
        make_checker: MakeChecker, sandbox: SandboxServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    checker = make_checker()
    group = checker.check_many([DENIED, CLEAN], TENDER, online=True)
    assert [d.outcome.value for d in group] == ["deny", "allow"]
    for d in group:
        assert isinstance(d.receipt, ServiceReceipt)
        claims = d.receipt.claims()
        assert claims["subject"] == {"kind": "organization", "id": d.subject.id}
        assert claims["data_version"] == d.data_version
        assert {e["entry_id"] for e in claims["entries"]} == {e.entry_id for e in d.matches}
    # What a tender file holds: the decisions' JSON, verified offline with the pinned key.
    tender = write(tmp_path / "tender.json", [d.public_dict() for d in group])
    code, out = verify(capsys, str(tender), "--key", sandbox.public_key)
    assert code == 0, out
    assert out.count("查询凭证有效") == 2 and "has 1 counting entry" in out
    assert "has 0 counting entries" in out


def test_a_tampered_receipt_is_refused(make_checker: MakeChecker, sandbox: SandboxServer,
                                       tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    checker = make_checker()
    d = checker.check_many([DENIED], TENDER, online=True)[0]
    assert d.receipt is not None
    receipt = d.receipt.to_dict()
    claims = json.loads(receipt["signed"])
    claims["entries"] = []  # the listed bidder made to look clean
    receipt["signed"] = json.dumps(claims, sort_keys=True, separators=(",", ":"),
                                   ensure_ascii=False)
    code, out = verify(capsys, str(write(tmp_path / "r.json", receipt)),
                       "--key", sandbox.public_key)
    assert code == 1
    assert "NOT verified" in out and "does not verify" in out
    # Another key (not the service's) verifies nothing either.
    code, out = verify(capsys, str(write(tmp_path / "ok.json", d.receipt.to_dict())),
                       "--key", Signer.generate().public_key)
    assert code == 1 and "not among the keys given" in out


def test_a_person_receipt_names_no_id_and_is_bound_only_with_the_id(
        make_checker: MakeChecker, sandbox: SandboxServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    checker = make_checker()
    d = checker.check_many([Subject.person(PERSON)], TENDER, online=True)[0]
    assert isinstance(d.receipt, ServiceReceipt) and d.outcome.value == "deny"
    path = write(tmp_path / "person.json", d.receipt.to_dict())
    assert PERSON not in path.read_text() and PERSON[:17] not in path.read_text()
    code, out = verify(capsys, str(path), "--key", sandbox.public_key)
    assert code == 0 and "未核对" in out and "give --id" in out
    code, out = verify(capsys, str(path), "--key", sandbox.public_key, "--id", PERSON)
    assert code == 0 and "已核对" in out and PERSON not in out
    code, out = verify(capsys, str(path), "--key", sandbox.public_key, "--id", OTHER_PERSON)
    assert code == 1 and "another subject" in out and OTHER_PERSON not in out


def test_a_local_decision_carries_the_signed_snapshot_header_in_its_record(
        make_checker: MakeChecker, sandbox: SandboxServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    checker = make_checker()
    d = checker.check(CLEAN, TENDER)
    assert isinstance(d.receipt, SnapshotReceipt)
    assert d.receipt.header.header_signature is not None  # the sandbox signs receipts
    records = checker.checks_for_case(TENDER.case_id or "")
    assert [r.receipt for r in records] == [d.receipt.to_dict()]
    path = write(tmp_path / "local.json", records[0].model_dump(mode="json"))
    code, out = verify(capsys, str(path), "--key", sandbox.public_key, "--id", CLEAN)
    assert code == 0, out
    assert "本地判定凭证有效" in out and "nothing more" in out and "issued at" in out
    code, out = verify(capsys, str(path), "--key", sandbox.public_key, "--id", DENIED)
    assert code == 1 and "is not the prefix of" in out
    forged = {**d.receipt.to_dict(), "version": d.receipt.header.version + 1}
    code, out = verify(capsys, str(write(tmp_path / "f.json", forged)),
                       "--key", sandbox.public_key)
    assert code == 1 and "NOT verified" in out


def test_a_receipt_from_before_a_key_rotation_still_verifies(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], make_checker: MakeChecker,
        sandbox: SandboxServer) -> None:
    checker = make_checker()
    old_receipt = checker.check_many([DENIED], TENDER, online=True)[0].receipt
    assert old_receipt is not None
    old_public = sandbox.public_key
    checker.close()
    sandbox.stop()
    new_key = tmp_path / "new.key"
    assert main(["serve", "keygen", str(new_key)]) == 0
    assert main(["serve", "rotate-key", str(new_key), "--db", str(sandbox.db_path)]) == 0
    sandbox.start()  # the same database, now signing with the new key
    assert sandbox.public_key != old_public
    keys = requests.get(sandbox.base_url + "/v1/keys", timeout=10,
                        headers={"Authorization": f"Bearer {sandbox.demo_key}"}).json()
    assert [(k["public_key"], k["status"]) for k in keys["keys"]] == [
        (sandbox.public_key, "current"), (old_public, "previous")]
    saved = write(tmp_path / "keys.json", keys)
    receipt = write(tmp_path / "old.json", old_receipt.to_dict())
    # Pinned to the new key alone, the old receipt's key is unknown ...
    code, out = verify(capsys, str(receipt), "--key", sandbox.public_key)
    assert code == 1 and "--keys" in out
    # ... and the service's signed key list vouches for the previous key.
    code, out = verify(capsys, str(receipt), "--key", sandbox.public_key, "--keys", str(saved))
    assert code == 0, out
    # A key list signed by a key nobody pinned is refused.
    code, out = verify(capsys, str(receipt), "--key", Signer.generate().public_key,
                       "--keys", str(saved))
    assert code == 2 and "not signed by a key you pinned" in out


def test_receipt_verify_runs_as_a_command_and_says_what_is_wrong_with_bad_input(
        tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "credit_check._cli", "receipt", "verify"]
    env = {"PATH": "/usr/bin:/bin", "CREDIT_CHECK_DATA_DIR": str(tmp_path / "none")}
    run = subprocess.run([*cli, str(tmp_path / "missing.json"), "--key",
                          Signer.generate().public_key], capture_output=True, text=True,
                         env=env, timeout=60, check=False)
    assert run.returncode == 2 and "no such file" in run.stderr
    write(tmp_path / "empty.json", {"hello": 1})
    run = subprocess.run([*cli, str(tmp_path / "empty.json")], capture_output=True,
                         text=True, env=env, timeout=60, check=False)
    assert run.returncode == 2 and "no service key to verify with" in run.stderr
