"""The data directory: processes starting together on an empty directory agree on one
encryption key (the first to link its key file wins), so no record becomes undecryptable."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from credit_check._datadir import KEY_FILE, DataDir, create_exclusive

WORKERS = 8
ROUNDS = 6


def _make_key(directory: str, out: str, barrier: Barrier) -> None:
    barrier.wait()
    cipher = DataDir(directory).cipher(None)
    # The key itself is not exposed; what it encrypts is: each process encrypts a marker.
    Path(out).write_bytes(cipher.encrypt(b"marker"))


def test_processes_starting_together_agree_on_one_generated_key(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        directory = tmp_path / f"round{round_}"
        barrier = ctx.Barrier(WORKERS)
        outs = [tmp_path / f"r{round_}-{k}.bin" for k in range(WORKERS)]
        procs = [ctx.Process(target=_make_key, args=(str(directory), str(o), barrier))
                 for o in outs]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * WORKERS
        cipher = DataDir(directory).cipher(None)  # the key now on disk
        for out in outs:
            assert cipher.decrypt(out.read_bytes()) == b"marker", (round_, out.name)
        assert [p.name for p in directory.iterdir()] == [KEY_FILE]  # no temporary left
        assert (directory / KEY_FILE).stat().st_mode & 0o077 == 0


def test_create_exclusive_never_replaces_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    assert create_exclusive(path, b"first")
    assert not create_exclusive(path, b"second")
    assert path.read_bytes() == b"first"


def test_an_unreadable_key_file_is_a_configuration_error(tmp_path: Path) -> None:
    from credit_check._exceptions import ConfigurationError

    (tmp_path / KEY_FILE).write_text("not base64 !!")
    with pytest.raises(ConfigurationError, match="ENCRYPTION_KEY"):
        DataDir(tmp_path).cipher(None)
