"""The sandbox's secret key files beside its database (signing key, data key): created
once, first writer wins, so that workers starting together on an empty directory all end
up with the one key that was written first.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from credit_check._exceptions import ConfigurationError

KEY_BYTES = 32
# Creating a key takes one link(); a reader that finds no file retries a few times only
# when another process removed its own temporary file between our tries.
_TRIES = 20


def signing_key_file(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".signing-key")


def data_key_file(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".data-key")


def read_or_create(path: Path, make: Callable[[], bytes], what: str) -> bytes:
    """The key in ``path``; when there is none, one made by ``make`` is put there first.

    The new key is written in full under a temporary name, flushed to disk, then linked
    into place with ``os.link``, which fails when the name exists: a loser of the race
    drops its own key and reads the winner's. A reader can never see a half-written key.

    Raises:
        ConfigurationError: the file holds something that is not a key of the right size,
            or cannot be created.
    """
    for _ in range(_TRIES):
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ConfigurationError(f"{path}: cannot read the {what}: {exc}") from exc
        else:
            if len(raw) != KEY_BYTES:
                raise ConfigurationError(
                    f"{path}: not a {KEY_BYTES}-byte {what} ({len(raw)} bytes); restore it "
                    "from a backup, or remove it to make a new one (clients must then re-pin "
                    "a new signing key, and data sealed with an old data key is lost)")
            return raw
        _create(path, make(), what)
    raise ConfigurationError(f"{path}: the {what} could not be created or read")


def _create(path: Path, key: bytes, what: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return  # another process was first: its key is the one
        _sync_dir(path.parent)
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot create the {what}: {exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _sync_dir(directory: Path) -> None:
    # The new name must survive a power cut, or a restart would make another key.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def data_key(db_path: Path, env_text: str | None) -> bytes:
    """The sandbox's data key: ``CREDIT_CHECK_SANDBOX_DATA_KEY`` (base64 of 32 bytes) when
    given, else the key file beside the database (made on first use, mode 0600).

    Raises:
        ConfigurationError: the variable is not base64 of 32 bytes, or the file is bad.
    """
    if env_text is not None and env_text.strip():
        try:
            raw = base64.b64decode(env_text.strip().encode("ascii"), validate=True)
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != KEY_BYTES:
            raise ConfigurationError(
                "CREDIT_CHECK_SANDBOX_DATA_KEY: must be base64 of 32 random bytes; make one "
                "with python -c 'import os,base64;print(base64.b64encode(os.urandom(32))"
                ".decode())'")
        return raw
    return read_or_create(data_key_file(db_path), lambda: os.urandom(KEY_BYTES),
                          "sandbox data key")
