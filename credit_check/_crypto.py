"""Wire-level cryptography shared by the SDK and the sandbox: canonical JSON, subject-id
prefixes, Ed25519 signatures over snapshots and catalogues, feedback HMACs, AES-GCM.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from credit_check._exceptions import ConfigurationError, CreditCheckError, InvalidServiceData

PREFIX_BYTES = 4
SNAPSHOT_CONTEXT = b"credit-check/snapshot/v1\n"
CATALOG_CONTEXT = b"credit-check/catalog/v1\n"
# Protocol v1.1 (DESIGN §9.2): a second signature beside the first, over the freshness fields.
SNAPSHOT_CONTEXT_V2 = b"credit-check/snapshot/v2\n"
CATALOG_CONTEXT_V2 = b"credit-check/catalog/v2\n"
FEEDBACK_CONTEXT = b"credit-check/feedback/v1"
# A staged catalogue (a dry-run) is signed in a context of its own, so that its answer can
# never be taken for the current catalogue's.
STAGED_CONTEXT = b"credit-check/catalog-staged/v1\n"


# json.dumps() with options builds an encoder per call; one shared encoder is stateless.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(obj: Any) -> bytes:
    """The canonical form used for signatures and HMACs: sorted keys, no spaces, UTF-8."""
    return _CANONICAL.encode(obj).encode()


def id_prefix(normalized_id: str) -> int:
    """The 32-bit prefix of SHA-256 of a normalised subject id, as an unsigned integer."""
    return int.from_bytes(hashlib.sha256(normalized_id.encode()).digest()[:PREFIX_BYTES], "big")


def pack_prefixes(prefixes: Iterable[int]) -> bytes:
    """Sorted prefixes as concatenated 4-byte big-endian integers (the wire form)."""
    return b"".join(p.to_bytes(PREFIX_BYTES, "big") for p in sorted(prefixes))


def unpack_prefixes(data: bytes) -> list[int]:
    """The inverse of :func:`pack_prefixes`."""
    if len(data) % PREFIX_BYTES:
        raise InvalidServiceData(f"prefix data of {len(data)} bytes is not a multiple of 4")
    return [int.from_bytes(data[i : i + PREFIX_BYTES], "big")
            for i in range(0, len(data), PREFIX_BYTES)]


def prefix_checksum(sorted_packed: bytes) -> str:
    """SHA-256 (hex) of the packed, sorted full prefix set."""
    return hashlib.sha256(sorted_packed).hexdigest()


def snapshot_message(version: int, checksum: str) -> bytes:
    """What the service signs for a snapshot or delta: its version and full-set checksum."""
    return SNAPSHOT_CONTEXT + f"{version}\n{checksum}".encode()


def catalog_message(catalog: dict[str, Any]) -> bytes:
    """What the service signs for a catalogue: its canonical JSON."""
    return CATALOG_CONTEXT + canonical_json(catalog)


def snapshot_message_v2(
    *, version: int, checksum: str, issued_at: str, catalog_serial: int, epoch: int,
    since: int | None = None, changed: str = "", lifted: Iterable[str] = (),
) -> bytes:
    """What the service signs as ``signature_v2`` of a snapshot or delta answer (v1.1).

    It binds the answer to the moment it was issued (``issued_at``, the answering
    instance's clock, ISO 8601), to the current catalogue ``serial`` and to the database
    ``epoch``, so a replayed or frozen answer cannot pass for a fresh one; and, for a
    delta, to its ``since`` and the re-screening hints ``changed`` (base64 packed
    prefixes, as sent) and ``lifted`` (entry ids) of DESIGN §9.3.
    """
    return SNAPSHOT_CONTEXT_V2 + canonical_json({
        "version": version, "checksum": checksum, "issued_at": issued_at,
        "catalog_serial": catalog_serial, "epoch": epoch, "since": since,
        "changed": changed, "lifted": sorted(lifted),
    })


def catalog_message_v2(catalog: dict[str, Any], *, serial: int, epoch: int,
                       schema: int) -> bytes:
    """What the service signs as ``signature_v2`` of a catalogue answer (v1.1): the
    catalogue with its ``serial`` (only ever increasing), ``epoch`` and required
    ``schema``."""
    return CATALOG_CONTEXT_V2 + canonical_json(
        {"catalog": catalog, "serial": serial, "epoch": epoch, "schema": schema})


def staged_catalog_message(catalog: dict[str, Any], *, serial: int, epoch: int,
                           schema: int) -> bytes:
    """What the service signs for its staged catalogue (``GET /v1/catalog?stage=1``):
    the catalogue with its staging serial, the epoch and its schema."""
    return STAGED_CONTEXT + canonical_json(
        {"catalog": catalog, "serial": serial, "epoch": epoch, "schema": schema})


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidServiceData("malformed base64 data") from exc


class Signer:
    """An Ed25519 signing key of the list service."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Signer:
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def private_bytes(self) -> bytes:
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    @property
    def public_key(self) -> str:
        """The public key, base64 of its 32 raw bytes."""
        return b64e(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, message: bytes) -> str:
        return b64e(self._key.sign(message))


def load_public_key(text: str) -> Ed25519PublicKey:
    """Parse a base64 Ed25519 public key (as ``GET /v1/keys`` publishes it).

    Raises:
        ConfigurationError: the text is not a 32-byte base64 key.
    """
    try:
        raw = base64.b64decode(text.strip().encode("ascii"), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, UnicodeEncodeError) as exc:
        raise ConfigurationError(
            "CREDIT_CHECK_SERVICE_PUBLIC_KEY: not a base64 Ed25519 public key (32 bytes); "
            "copy it from the service's GET /v1/keys"
        ) from exc


def verify(public_key: Ed25519PublicKey, message: bytes, signature: str, what: str) -> None:
    """Check a signature.

    Raises:
        InvalidServiceData: the signature is malformed or does not match.
    """
    try:
        public_key.verify(b64d(signature), message)
    except (InvalidSignature, CreditCheckError, ValueError) as exc:
        raise InvalidServiceData(f"{what}: signature does not verify with the service key") from exc


def feedback_key(api_key: str) -> bytes:
    """The key a department's feedback HMACs use, derived from its API key.

    The service keeps this derived key, not the API key, so a leak of its database does not
    let anyone call the API as the department.
    """
    return hmac.new(api_key.encode(), FEEDBACK_CONTEXT, hashlib.sha256).digest()


def record_hmac(key: bytes, record: dict[str, Any]) -> str:
    """HMAC-SHA256 (hex) over a feedback record's canonical JSON, without its ``hmac`` field."""
    body = {k: v for k, v in record.items() if k != "hmac"}
    return hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()


def api_key_hash(api_key: str) -> str:
    """How API keys are stored: SHA-256 hex (the keys are random, 256-bit)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class FieldCipher:
    """AES-256-GCM for personal data at rest; each value gets a fresh 96-bit nonce."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigurationError(
                "CREDIT_CHECK_ENCRYPTION_KEY: must be 32 bytes, base64-encoded "
                f"(got {len(key)} bytes); generate one with "
                "python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'"
            )
        self._aead = AESGCM(key)
        self._hash_key = hmac.new(key, b"credit-check/keyed-hash/v1", hashlib.sha256).digest()

    @classmethod
    def from_text(cls, text: str) -> FieldCipher:
        try:
            key = base64.b64decode(text.strip().encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError) as exc:
            raise ConfigurationError(
                "CREDIT_CHECK_ENCRYPTION_KEY: not valid base64; it must encode 32 random bytes"
            ) from exc
        return cls(key)

    def encrypt(self, plaintext: bytes, associated: bytes = b"",
                nonce: bytes | None = None) -> bytes:
        """``nonce ‖ ciphertext ‖ tag``. The nonce is random unless the caller gives one it
        guarantees is never reused with this key (the journal: a random prefix per file
        and a counter)."""
        if nonce is None:
            nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, associated)

    def keyed_hash(self, label: str, value: str) -> bytes:
        """A deterministic 16-byte HMAC of ``value`` under a key derived from this one: an
        index column that finds a row by an identifier without storing it in clear."""
        return hmac.new(self._hash_key, f"{label}\n{value}".encode(),
                        hashlib.sha256).digest()[:16]

    def decrypt(self, blob: bytes, associated: bytes = b"") -> bytes:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], associated)
        except (InvalidTag, ValueError) as exc:
            raise ConfigurationError(
                "stored data does not decrypt with CREDIT_CHECK_ENCRYPTION_KEY: "
                "the key was changed or the data is damaged"
            ) from exc
