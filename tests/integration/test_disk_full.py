"""A full disk never opens the gate: when the decision record cannot be written, check()
raises OutboxError carrying the decision (a listed subject's DENY is still known and
enforced by the caller), nothing half-written is left behind, and checks are recorded
again once space returns. Run on a real full file system (a small tmpfs, where root may
mount one) and under a small RLIMIT_FSIZE (anywhere)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _sandbox_support import DEPARTMENT, ENCRYPTION_KEY, admin
from _small_fs import fill, mounted_tmpfs

from credit_check import Checker, OutboxError, Outcome, Subject, Transaction
from credit_check._server import SandboxServer
from credit_check._server._demo import SHOWCASE

LISTED = SHOWCASE["court_defaulter_org"]
CLEAN = "91350100M000100Y43"
TX = Transaction(scenario="procurement", case_id="DISK-FULL")


def _checker(sandbox: SandboxServer, data_dir: Path) -> Checker:
    checker = Checker(base_url=sandbox.base_url, api_key=sandbox.demo_key,
                      department=DEPARTMENT, data_dir=data_dir, encryption_key=ENCRYPTION_KEY,
                      service_public_key=sandbox.public_key, start=False)
    assert checker.sync(), checker.status().last_error
    return checker


def _received(sandbox: SandboxServer) -> set[str]:
    records = admin(sandbox, "GET", "/v1/admin/feedback")["records"]
    return {r["decision_id"] for r in records if r["kind"] == "decision"}


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    yield from mounted_tmpfs(tmp_path, "the RLIMIT_FSIZE variant runs instead")


def test_on_a_full_file_system_the_gate_stays_closed_and_recovers(
        sandbox: SandboxServer, small_fs: Path) -> None:
    checker = _checker(sandbox, small_fs / "sdk")
    try:
        returned = [checker.check(CLEAN, TX).decision_id]  # space left: recorded
        filler = fill(small_fs)
        refused = []
        # The journal's last block may still hold a few records: they are on disk.
        for _ in range(100):
            try:
                returned.append(checker.check(CLEAN, TX).decision_id)
            except OutboxError as exc:
                assert exc.decision.outcome is Outcome.ALLOW
                refused.append(exc.decision.decision_id)
                break
        assert refused, "the file system never filled up"
        with pytest.raises(OutboxError, match="could not be recorded") as caught:
            checker.check(Subject.organization(LISTED), TX)
        assert caught.value.decision.outcome is Outcome.DENY  # decided, and to be enforced
        refused.append(caught.value.decision.decision_id)
        filler.unlink()  # space returns
        after = checker.check(LISTED, TX)
        assert after.outcome is Outcome.DENY
        returned.append(after.decision_id)
        box = checker._outbox
        assert box is not None and box.sender is not None
        assert box.sender.flush(15)
        status = box.status()
        assert (status.undecryptable, status.dead_lettered, status.pending) == (0, 0, 0)
    finally:
        checker.close()
    got = _received(sandbox)
    assert set(returned) <= got
    assert not got & set(refused)  # never returned, so never claimed as recorded


CHILD = """
import json, resource, sys
from pathlib import Path
from credit_check import Checker, OutboxError, Subject, Transaction
base_url, key, public, data_dir, listed, clean, enc = sys.argv[1:8]
checker = Checker(base_url=base_url, api_key=key, department="局", data_dir=data_dir,
                  encryption_key=enc, service_public_key=public, start=False, sender=False)
assert checker.sync()
tx = Transaction(scenario="procurement", case_id="DISK-FULL")
journal = Path(data_dir) / "journal"
out = {"returned": [], "refused": []}
def check(code):
    try:
        d = checker.check(Subject.organization(code), tx)
        out["returned"].append([d.decision_id, d.outcome.value])
    except OutboxError as exc:
        out["refused"].append([exc.decision.decision_id, exc.decision.outcome.value])
check(clean)
size = sum(p.stat().st_size for p in journal.iterdir())
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))  # no room for one more record
check(listed); check(clean)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))       # space returns
check(listed)
checker.close(0.0)
print(json.dumps(out))
"""


def test_under_a_file_size_limit_the_gate_stays_closed_and_recovers(
        sandbox: SandboxServer, tmp_path: Path) -> None:
    data_dir = tmp_path / "sdk"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, sandbox.base_url, sandbox.demo_key, sandbox.public_key,
         str(data_dir), LISTED, CLEAN, ENCRYPTION_KEY],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert [o for _, o in out["returned"]] == ["allow", "deny"]
    assert [o for _, o in out["refused"]] == ["deny", "allow"]
    checker = _checker(sandbox, data_dir)
    try:
        assert checker._outbox is not None
        box = checker._outbox
        sender = box.attach_sender(checker._transport, max_delay=0.01)
        assert sender.flush(15)
        assert box.status().undecryptable == 0  # no torn frame left in the journal
    finally:
        checker.close()
    got = _received(sandbox)
    assert {i for i, _ in out["returned"]} <= got
    assert not got & {i for i, _ in out["refused"]}
