"""The signed snapshot of listed subjects' id prefixes: verifying and applying full and
delta answers of ``GET /v1/snapshot``, and persisting the last good copy to disk.
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from credit_check._crypto import b64d, id_prefix, snapshot_message, verify
from credit_check._datadir import write_private
from credit_check._exceptions import InvalidServiceData
from credit_check._prefixes import PrefixSet, unpack

# Version 2 keeps the low halves as two byte planes; a version 1 file is refused (and the
# next sync fetches the set in full).
MAGIC = b"CCSNAP2\n"
_HEADER_LEN = struct.Struct(">I")


class SnapshotChecksumMismatch(InvalidServiceData):
    """A delta did not add up to the set the service signed: resync in full."""


@dataclass(frozen=True, slots=True)
class SnapshotState:
    """One verified version of the prefix set. Immutable: updates build a new state."""

    version: int
    checksum: str
    signature: str
    prefixes: PrefixSet

    @classmethod
    def empty(cls) -> SnapshotState:
        """The state before any snapshot: version -1, nothing listed, nothing signed."""
        return cls(-1, "", "", PrefixSet.empty())

    def contains(self, normalized_id: str) -> bool:
        """Whether the id's prefix is in the set (listed, or a rare collision)."""
        return id_prefix(normalized_id) in self.prefixes

    def __len__(self) -> int:
        return len(self.prefixes)

    def apply(self, body: dict[str, Any], key: Ed25519PublicKey) -> SnapshotState:
        """Verify a full or delta answer and return the resulting state.

        Nothing changes on failure: the caller keeps serving ``self``.

        Raises:
            SnapshotChecksumMismatch: a delta's result does not match the signed checksum.
            InvalidServiceData: a malformed answer, a bad signature, an older version than
                the one held (a replay), or a delta from another version.
        """
        try:
            version = body["version"]
            checksum = body["checksum"]
            signature = body["signature"]
            full = body.get("full", "prefixes" in body)
        except (KeyError, TypeError, AttributeError):
            raise InvalidServiceData("snapshot: the answer lacks version, checksum or signature") from None
        if not isinstance(version, int) or not isinstance(checksum, str) or not isinstance(signature, str):
            raise InvalidServiceData("snapshot: version, checksum or signature has a wrong type")
        # Verify the signature before any expensive work on unauthenticated data.
        verify(key, snapshot_message(version, checksum), signature, f"snapshot version {version}")
        if version < self.version:
            raise InvalidServiceData(
                f"snapshot: version {version} is older than the version {self.version} held "
                "(a replayed answer); keeping the current snapshot"
            )
        if full:
            data = _field_bytes(body, "prefixes")
            prefixes = PrefixSet.from_packed(data)
            # Recomputed from the built set, so unsorted or duplicated input is caught too.
            actual = prefixes.checksum()
            if actual != checksum:
                raise InvalidServiceData(f"snapshot version {version}: checksum mismatch")
            return SnapshotState(version, checksum, signature, prefixes)
        since = body.get("since")
        if since != self.version:
            raise InvalidServiceData(
                f"snapshot: a delta from version {since!r} cannot apply to version {self.version}"
            )
        added = unpack(_field_bytes(body, "added"))
        removed = unpack(_field_bytes(body, "removed"))
        prefixes = self.prefixes.apply_delta(added, removed)
        actual = prefixes.checksum()
        if actual != checksum:
            raise SnapshotChecksumMismatch(
                f"snapshot delta {since}→{version}: the resulting set's checksum does not match"
            )
        return SnapshotState(version, checksum, signature, prefixes)

    def save(self, path: Path) -> None:
        """Write the state atomically (mode 0600) in a format :meth:`load` re-verifies."""
        offsets, third, fourth = self.prefixes.save_arrays()
        header = json.dumps({
            "version": self.version, "checksum": self.checksum, "signature": self.signature,
            "count": len(self.prefixes), "byteorder": sys.byteorder, "offsets": len(offsets),
        }).encode()
        write_private(path, b"".join(
            (MAGIC, _HEADER_LEN.pack(len(header)), header, offsets, third, fourth)
        ))

    @classmethod
    def load(cls, path: Path, key: Ed25519PublicKey) -> SnapshotState:
        """Read a state written by :meth:`save`, verifying checksum and signature again.

        Raises:
            InvalidServiceData: the file is damaged or tampered with.
            OSError: the file cannot be read.
        """
        with open(path, "rb") as fh:
            data = fh.read()
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
            raise InvalidServiceData(f"{path}: not a credit-check snapshot file")
        (size,) = _HEADER_LEN.unpack_from(data, len(MAGIC))
        start = len(MAGIC) + 4
        try:
            header = json.loads(data[start : start + size])
            version, checksum, signature = header["version"], header["checksum"], header["signature"]
            n_offsets, count = int(header["offsets"]), int(header["count"])
            byteorder = header["byteorder"]
        except (ValueError, KeyError, TypeError):
            raise InvalidServiceData(f"{path}: the snapshot header is damaged") from None
        if byteorder != sys.byteorder:
            raise InvalidServiceData(f"{path}: written on a machine of another byte order")
        body = start + size
        planes = body + n_offsets
        prefixes = PrefixSet.from_arrays(data[body:planes], data[planes : planes + count],
                                         data[planes + count :])
        verify(key, snapshot_message(version, checksum), signature, f"{path}")
        if prefixes.checksum() != checksum:
            raise InvalidServiceData(f"{path}: the prefixes do not match the signed checksum")
        return cls(version, checksum, signature, prefixes)


def _field_bytes(body: dict[str, Any], name: str) -> bytes:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise InvalidServiceData(f"snapshot: {name!r} is not a base64 string")
    return b64d(value)
