"""The signed snapshot of listed subjects' id prefixes: verifying and applying full and
delta answers of ``GET /v1/snapshot``, and persisting the last good copy to disk.
"""

from __future__ import annotations

import json
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from credit_check._crypto import b64d, id_prefix, snapshot_message, snapshot_message_v2, verify
from credit_check._datadir import write_private
from credit_check._exceptions import InvalidReceipt, InvalidServiceData
from credit_check._prefixes import PrefixSet, unpack
from credit_check._receipts import SnapshotHeader, header_message, key_id

# Version 2 keeps the low halves as two byte planes; a version 1 file is refused (and the
# next sync fetches the set in full).
MAGIC = b"CCSNAP2\n"
_HEADER_LEN = struct.Struct(">I")


class SnapshotChecksumMismatch(InvalidServiceData):
    """A delta did not add up to the set the service signed: resync in full."""


class SnapshotRollback(InvalidServiceData):
    """A validly signed answer older than the state held (a lagging instance or a replay),
    or from a lower epoch: ignored, the current state keeps serving."""


class EpochRaised(InvalidServiceData):
    """The answer comes from a higher database epoch (a restored backup): resync in full."""


@dataclass(frozen=True, slots=True)
class Signed:
    """The v1.1 fields of a snapshot answer, verified by its ``signature_v2``."""

    issued_at: str
    catalog_serial: int
    epoch: int
    # The signature over the header alone (receipts, §9.4); None from a service that
    # does not sign receipts.
    header_signature: str | None = None


@dataclass(frozen=True, slots=True)
class Hints:
    """What an answer says about the change it brings, for re-screening (DESIGN §9.3):
    ``full`` for a full answer (everything may have changed), else the delta's ``since``,
    the prefixes it touched (added, removed, and — when signed — ``changed``) and the
    entries it lifted (signed only)."""

    full: bool
    since: int | None = None
    prefixes: frozenset[int] = frozenset()
    lifted: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotState:
    """One verified version of the prefix set. Immutable: updates build a new state."""

    version: int
    checksum: str
    signature: str
    prefixes: PrefixSet
    # From the answer that produced this state, when it was a v1.1 answer.
    signed: Signed | None = None
    # What a local decision on this state keeps as its receipt (one object per state).
    header: SnapshotHeader | None = field(default=None, compare=False)
    # What the answer that produced this state changed (None for a state loaded from disk).
    hints: Hints | None = field(default=None, compare=False)

    @classmethod
    def empty(cls) -> SnapshotState:
        """The state before any snapshot: version -1, nothing listed, nothing signed."""
        return cls(-1, "", "", PrefixSet.empty())

    def contains(self, normalized_id: str) -> bool:
        """Whether the id's prefix is in the set (listed, or a rare collision)."""
        return id_prefix(normalized_id) in self.prefixes

    def __len__(self) -> int:
        return len(self.prefixes)

    @property
    def epoch(self) -> int | None:
        return self.signed.epoch if self.signed is not None else None

    def apply(self, body: dict[str, Any], key: Ed25519PublicKey, *,
              require_v2: bool = False) -> SnapshotState:
        """Verify a full or delta answer and return the resulting state.

        Nothing changes on failure: the caller keeps serving ``self``.

        Args:
            require_v2: refuse an answer without ``signature_v2`` (once the service has
                signed its freshness, an answer without it could be a replay).

        Raises:
            SnapshotChecksumMismatch: a delta's result does not match the signed checksum.
            SnapshotRollback: an older version than the one held in the same epoch, or a
                lower epoch.
            EpochRaised: a higher epoch than the one held.
            InvalidServiceData: a malformed answer, a bad signature, a missing
                ``signature_v2`` when required, or a delta from another version.
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
        signed = _verify_v2(body, key, version, checksum, require_v2)
        if signed is not None and self.epoch is not None and signed.epoch != self.epoch:
            if signed.epoch < self.epoch:
                raise SnapshotRollback(
                    f"snapshot: epoch {signed.epoch} is lower than the epoch {self.epoch} held; "
                    "refused, keeping the current snapshot"
                )
            raise EpochRaised(f"snapshot: the service's epoch rose from {self.epoch} to "
                              f"{signed.epoch} (a restored database)")
        if version < self.version:
            raise SnapshotRollback(
                f"snapshot: version {version} is older than the version {self.version} held "
                "(a lagging instance or a replayed answer); keeping the current snapshot"
            )
        if full:
            data = _field_bytes(body, "prefixes")
            prefixes = PrefixSet.from_packed(data)
            # Recomputed from the built set, so unsorted or duplicated input is caught too.
            actual = prefixes.checksum()
            if actual != checksum:
                raise InvalidServiceData(f"snapshot version {version}: checksum mismatch")
            return SnapshotState(version, checksum, signature, prefixes, signed,
                                 _header(key, version, checksum, signature, signed),
                                 Hints(True))
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
        touched = frozenset(added).union(removed)
        lifted: tuple[str, ...] = ()
        if signed is not None:  # changed and lifted are bound by signature_v2 only
            touched = touched.union(unpack(_field_bytes(body, "changed")))
            lifted = tuple(body.get("lifted", ()))
        return SnapshotState(version, checksum, signature, prefixes, signed,
                             _header(key, version, checksum, signature, signed),
                             Hints(False, since, touched, lifted))

    def save(self, path: Path) -> None:
        """Write the state atomically (mode 0600) in a format :meth:`load` re-verifies."""
        offsets, third, fourth = self.prefixes.save_arrays()
        header = json.dumps({
            "version": self.version, "checksum": self.checksum, "signature": self.signature,
            "count": len(self.prefixes), "byteorder": sys.byteorder, "offsets": len(offsets),
            "signed": [self.signed.issued_at, self.signed.catalog_serial, self.signed.epoch,
                       self.signed.header_signature]
            if self.signed else None,
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
            # Informational (the epoch held); freshness itself is kept in freshness.json.
            extra = header.get("signed")
            signed = (Signed(str(extra[0]), int(extra[1]), int(extra[2]),
                             str(extra[3]) if len(extra) > 3 and extra[3] else None)
                      if extra else None)
        except (ValueError, KeyError, TypeError, IndexError):
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
        try:
            header = _header(key, version, checksum, signature, signed)
        except InvalidReceipt:
            # Receipts of later decisions then carry the version and checksum alone.
            signed = Signed(signed.issued_at, signed.catalog_serial, signed.epoch) \
                if signed is not None else None
            header = _header(key, version, checksum, signature, signed)
        return cls(version, checksum, signature, prefixes, signed, header)


def _verify_v2(body: dict[str, Any], key: Ed25519PublicKey, version: int, checksum: str,
               required: bool) -> Signed | None:
    signature_v2 = body.get("signature_v2")
    if signature_v2 is None:
        if required:
            raise InvalidServiceData(
                f"snapshot version {version}: no signature_v2, but the service has signed "
                "its freshness before; refused (a replayed or downgraded answer)"
            )
        return None
    issued_at, serial, epoch = body.get("issued_at"), body.get("catalog_serial"), body.get("epoch")
    since, changed, lifted = body.get("since"), body.get("changed", ""), body.get("lifted", [])
    if (not isinstance(signature_v2, str) or not isinstance(issued_at, str)
            or not _is_int(serial) or not _is_int(epoch)
            or not (since is None or _is_int(since)) or not isinstance(changed, str)
            or not isinstance(lifted, list) or not all(isinstance(i, str) for i in lifted)):
        raise InvalidServiceData(
            f"snapshot version {version}: signature_v2, issued_at, catalog_serial, epoch, "
            "since, changed or lifted is missing or has a wrong type"
        )
    message = snapshot_message_v2(version=version, checksum=checksum, issued_at=issued_at,
                                  catalog_serial=serial, epoch=epoch, since=since,
                                  changed=changed, lifted=lifted)
    verify(key, message, signature_v2, f"snapshot version {version} (signature_v2)")
    header_signature = body.get("header_signature")
    if header_signature is not None and not isinstance(header_signature, str):
        raise InvalidServiceData(f"snapshot version {version}: header_signature is not a "
                                 "string")
    return Signed(issued_at, serial, epoch, header_signature)


def _header(key: Ed25519PublicKey, version: int, checksum: str, signature: str,
            signed: Signed | None) -> SnapshotHeader:
    """The receipt header of a verified state; a header signature that does not verify
    is refused (InvalidReceipt), as any other bad signature."""
    if signed is None:
        return SnapshotHeader(key_id(key), version, checksum, signature)
    if signed.header_signature is not None:
        message = header_message(version=version, checksum=checksum,
                                 issued_at=signed.issued_at,
                                 catalog_serial=signed.catalog_serial, epoch=signed.epoch)
        try:
            verify(key, message, signed.header_signature, f"snapshot header {version}")
        except InvalidServiceData as exc:
            raise InvalidReceipt(str(exc)) from None
    return SnapshotHeader(key_id(key), version, checksum, signature, signed.issued_at,
                          signed.catalog_serial, signed.epoch, signed.header_signature)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _field_bytes(body: dict[str, Any], name: str) -> bytes:
    value = body.get(name, "")
    if not isinstance(value, str):
        raise InvalidServiceData(f"snapshot: {name!r} is not a base64 string")
    return b64d(value)
