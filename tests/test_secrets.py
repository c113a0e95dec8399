"""The whole demo at DEBUG logging leaves no natural person's identifier and no API, admin,
HMAC or encryption key in clear: not in logs, stdout/stderr, nor any file of the data dirs
(outbox, snapshot, catalogue, post-check queue, sandbox database outside its list tables)."""

from __future__ import annotations

import argparse
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from credit_check import _demo
from credit_check._crypto import feedback_key
from credit_check._datadir import KEY_FILE
from credit_check._server import _runner
from credit_check._server._demo import SHOWCASE

PERSONS = [SHOWCASE["court_defaulter_rep"], SHOWCASE["black_person"]]
# The sandbox's own list tables hold the (fictional) listed persons by design.
LIST_TABLES = {"entries", "subjects"}


@pytest.fixture
def demo_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
             caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
             ) -> Iterator[tuple[Path, str, dict[str, str]]]:
    root = tmp_path / "demo"
    root.mkdir()

    @contextmanager
    def kept_dir(prefix: str = "") -> Iterator[str]:
        yield str(root)

    keys: dict[str, str] = {}
    real_open = _runner.open_sandbox

    def spying_open(*args: object, **kw: object) -> object:
        store, signer, admin, demo_key = real_open(*args, **kw)  # type: ignore[arg-type]
        keys.update(admin=admin, demo=demo_key, hmac=feedback_key(demo_key).hex(),
                    signing=signer.private_bytes().hex())
        return store, signer, admin, demo_key

    monkeypatch.setattr(_demo.tempfile, "TemporaryDirectory", kept_dir)
    monkeypatch.setattr(_runner, "open_sandbox", spying_open)
    caplog.set_level(logging.DEBUG)
    assert _demo.run(argparse.Namespace(json=False)) == 0
    out, err = capfd.readouterr()
    logs = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    yield root, out + err + logs, keys


def _files(root: Path) -> Iterator[Path]:
    yield from (p for p in root.rglob("*") if p.is_file())


def test_no_person_id_or_key_in_logs_or_output(demo_run: tuple[Path, str, dict[str, str]]
                                               ) -> None:
    _, text, keys = demo_run
    assert "deny" in text  # the demo ran and printed its table
    for secret in [*PERSONS, *keys.values()]:
        assert secret not in text


def test_no_person_id_or_key_in_data_files(demo_run: tuple[Path, str, dict[str, str]]) -> None:
    root, _, keys = demo_run
    encryption_key = (root / "checker" / KEY_FILE).read_text().strip()
    secrets = [*keys.values(), encryption_key]
    checked = 0
    for path in _files(root):
        if path.name == KEY_FILE or path.name.endswith(".signing-key"):
            continue  # the key files themselves (mode 0600)
        data = path.read_bytes()
        if path.parent.name == "sandbox" and data.startswith(b"SQLite format 3"):
            continue  # checked table by table below
        for secret in [*PERSONS, *secrets]:
            assert secret.encode() not in data, (path.name, "secret or person id in clear")
        checked += 1
    assert checked >= 3  # outbox, snapshot and catalogue at least


def test_sandbox_database_keeps_persons_only_in_its_list_tables(
    demo_run: tuple[Path, str, dict[str, str]],
) -> None:
    root, _, keys = demo_run
    conn = sqlite3.connect(root / "sandbox" / "sandbox.db")
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            dump = "\n".join(repr(row) for row in conn.execute(f"SELECT * FROM {table}"))
            for secret in keys.values():
                assert secret not in dump, table
            if table not in LIST_TABLES:
                for person in PERSONS:
                    assert person not in dump, table
    finally:
        conn.close()
