"""A full file system for the tests of what happens when a record cannot be written: a
1 MB tmpfs mounted for one test (root only), and a file that fills it (a uniquely named
module)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def mounted_tmpfs(tmp_path: Path, instead: str) -> Iterator[Path]:
    """A 1 MB tmpfs under ``tmp_path`` for the test's duration (a fixture's body); the
    test is skipped, saying what runs ``instead``, where one cannot be mounted."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip(f"mounting a small tmpfs needs root; {instead}")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, check=False)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write zeros into ``directory/filler`` until the file system is full; the file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass  # the file system is full
    finally:
        os.close(fd)
    return filler
