"""The SDK's data directory: where the snapshot, catalogue, outbox and post-check queue
live, the encryption key for personal data at rest, and the pinned service key.
"""

from __future__ import annotations

import base64
import logging
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from credit_check._crypto import FieldCipher, load_public_key
from credit_check._exceptions import ConfigurationError, InvalidServiceData

logger = logging.getLogger("credit_check")

KEY_FILE = "encryption.key"
SERVICE_KEY_FILE = "service_public.key"


def write_private(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path`` with mode 0600 (temp file, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_exclusive(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data`` (mode 0600) unless it exists: written whole and
    fsynced under a temporary name, then linked into place, so no reader ever sees it
    half-written and of processes racing only the first wins. True when we created it.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return True
    finally:
        Path(tmp).unlink(missing_ok=True)


class DataDir:
    """A directory (created with mode 0700) holding the SDK's local state."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        try:
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigurationError(
                f"CREDIT_CHECK_DATA_DIR: cannot create {str(self.path)!r}: {exc.strerror}"
            ) from exc
        if not os.access(self.path, os.W_OK):
            raise ConfigurationError(f"CREDIT_CHECK_DATA_DIR: {str(self.path)!r} is not writable")

    def file(self, name: str) -> Path:
        return self.path / name

    def cipher(self, key_text: str | None) -> FieldCipher:
        """The cipher for personal data at rest.

        Uses ``CREDIT_CHECK_ENCRYPTION_KEY`` when given; otherwise a key file in the data
        directory, generated (mode 0600) on first use with a warning, because a key kept
        beside the data protects only against copies of the database file alone. Processes
        starting together agree on one key: the first to link its key file into place wins
        and every other reads the winner's.
        """
        if key_text:
            return FieldCipher.from_text(key_text)
        path = self.file(KEY_FILE)
        if not path.exists():
            key = base64.b64encode(os.urandom(32))
            if create_exclusive(path, key):
                logger.warning(
                    "CREDIT_CHECK_ENCRYPTION_KEY is not set: generated a key file %s (mode "
                    "0600). Set the variable from a secret store in production.", path)
                return FieldCipher.from_text(key.decode())
        try:
            return FieldCipher.from_text(path.read_text())
        except OSError as exc:
            raise ConfigurationError(f"cannot read the key file {str(path)!r}") from exc

    def service_key(self, pinned: str | None, published: str | None = None) -> Ed25519PublicKey | None:
        """The service's Ed25519 key to verify snapshots and catalogues against.

        A configured key (``CREDIT_CHECK_SERVICE_PUBLIC_KEY``) always wins. Otherwise the key
        stored on first use is returned; ``published`` (from ``GET /v1/keys``) is stored
        when nothing is stored yet (trust on first use, with a warning) and must match a
        stored key later.

        Raises:
            InvalidServiceData: the published key differs from the one stored earlier.
        """
        if pinned:
            return load_public_key(pinned)
        path = self.file(SERVICE_KEY_FILE)
        stored = path.read_text().strip() if path.exists() else None
        if stored:
            if published and published.strip() != stored:
                raise InvalidServiceData(
                    "the service now publishes a different signing key than the one trusted on "
                    f"first use ({path}); if the key was rotated on purpose, set "
                    "CREDIT_CHECK_SERVICE_PUBLIC_KEY or delete that file"
                )
            return load_public_key(stored)
        if published:
            key = load_public_key(published)
            logger.warning(
                "CREDIT_CHECK_SERVICE_PUBLIC_KEY is not set: trusting the service key on first "
                "use and storing it in %s. Pin it in production.", path
            )
            write_private(path, published.strip().encode())
            return key
        return None
