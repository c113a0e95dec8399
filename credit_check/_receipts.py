"""Check receipts (查询凭证, DESIGN §9.4): what the service signs for an online answer, and
the signed snapshot header a local decision was made on. Shared by the SDK, the service
and ``credit-check receipt verify``; no I/O.

A *service receipt* is ``{alg, key_id, signed, signature}``: ``signed`` is the canonical
JSON of the answer's claims (department, data version, ``as_of``, entries, the subject —
a USCC in clear, a natural person only as ``SHA-256(salt ‖ id)`` with the receipt's random
``salt``), signed with the service's Ed25519 key. A *snapshot receipt* is the signed
header of the snapshot a local decision used (version, checksum, and — from a v1.1
service — ``issued_at``, catalogue serial and epoch under ``header_signature``) with the
subject's 4-byte prefix: it proves which signed data the decision used, nothing more.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from credit_check._crypto import b64d, b64e, canonical_json, id_prefix, snapshot_message
from credit_check._exceptions import InvalidReceipt, InvalidServiceData
from credit_check._ids import detect_kind

RECEIPT_TYPE = "credit-check/receipt/v1"
RECEIPT_CONTEXT = b"credit-check/receipt/v1\n"
HEADER_CONTEXT = b"credit-check/snapshot-header/v1\n"
KEYS_CONTEXT = b"credit-check/keys/v1\n"
ALG = "Ed25519"


def key_id(public_key: str | Ed25519PublicKey) -> str:
    """The id the service gives a signing key: SHA-256 of its base64 text, 16 hex digits."""
    if isinstance(public_key, Ed25519PublicKey):
        public_key = b64e(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))
    return hashlib.sha256(public_key.strip().encode()).hexdigest()[:16]


def person_hash(salt: str, id_number: str) -> str:
    """``SHA-256(salt ‖ id)`` in hex: how a receipt names a natural person."""
    try:
        raw = bytes.fromhex(salt)
    except ValueError:
        raise InvalidReceipt("the receipt's salt is not hex") from None
    return hashlib.sha256(raw + id_number.encode()).hexdigest()


def header_message(*, version: int, checksum: str, issued_at: str, catalog_serial: int,
                   epoch: int) -> bytes:
    """What the service signs as a snapshot answer's ``header_signature``: the header
    alone, so that a local decision's receipt can carry it without the prefixes."""
    return HEADER_CONTEXT + canonical_json({
        "version": version, "checksum": checksum, "issued_at": issued_at,
        "catalog_serial": catalog_serial, "epoch": epoch})


def keys_message(keys: list[dict[str, Any]]) -> bytes:
    """What the service signs for ``GET /v1/keys``: the list of its keys."""
    return KEYS_CONTEXT + canonical_json(keys)


def _check(key: Ed25519PublicKey, message: bytes, signature: str, what: str) -> None:
    try:
        key.verify(b64d(signature), message)
    except (InvalidSignature, InvalidServiceData, ValueError):
        raise InvalidReceipt(f"{what}: the signature does not verify with key "
                             f"{key_id(key)}") from None


# -- what the service signs --------------------------------------------------------------


def _entry_subject(subject_id: str, asked: str, salt: str) -> Any:
    if subject_id == asked:
        return "self"
    if detect_kind(subject_id) == "person":
        return {"id_sha256": person_hash(salt, subject_id)}
    return subject_id


def receipt_claims(answer: Mapping[str, Any], department: str, *, salt: str | None = None,
                   issued_at: str | None = None) -> dict[str, Any]:
    """The claims a receipt signs for one lookup answer (protocol §9.4).

    Args:
        answer: the answer as sent (``subject``, ``entries``, ``data_version``, ``as_of``,
            ``clean_since``, ``withheld``).
        department: the department of the key that asked.
        salt: hex; a random one when None.
        issued_at: when the receipt was made (the service's clock); ``as_of`` when None.
    """
    salt = salt or os.urandom(16).hex()
    subject = answer["subject"]
    asked, kind = str(subject["id"]), str(subject["kind"])
    named: dict[str, Any] = ({"kind": kind, "id": asked} if kind != "person"
                             else {"kind": kind, "id_sha256": person_hash(salt, asked)})
    entries = [{
        "entry_id": e["entry_id"], "list_code": e["list_code"], "list_kind": e["list_kind"],
        "status": e["status"], "effective_from": e.get("effective_from"),
        "effective_until": e.get("effective_until"),
        "subject": _entry_subject(str(e["subject_id"]), asked, salt),
    } for e in answer.get("entries") or ()]
    rep = (subject.get("legal_representative") or {}).get("id")
    return {
        "type": RECEIPT_TYPE, "receipt_id": os.urandom(8).hex(), "salt": salt,
        "department": department, "data_version": str(answer["data_version"]),
        "as_of": str(answer["as_of"]), "issued_at": issued_at or str(answer["as_of"]),
        "subject": named, "entries": entries, "clean_since": answer.get("clean_since"),
        "withheld": [{"role": w.get("role"), "reason": w.get("reason")}
                     for w in answer.get("withheld") or ()],
        "legal_representative": {"id_sha256": person_hash(salt, str(rep))} if rep else None,
    }


def sign_receipt(sign: Any, public_key: str, claims: dict[str, Any]) -> dict[str, Any]:
    """The wire form ``{alg, key_id, signed, signature}`` of ``claims``.

    Args:
        sign: the service's signing function (bytes -> base64 signature).
        public_key: the signing key's public half (base64), for its ``key_id``.
    """
    signed = canonical_json(claims).decode()
    return {"alg": ALG, "key_id": key_id(public_key), "signed": signed,
            "signature": sign(RECEIPT_CONTEXT + signed.encode())}


# -- the SDK's receipt objects ------------------------------------------------------------


class Receipt:
    """A decision's receipt (``Decision.receipt``): a :class:`ServiceReceipt` for a
    service-signed answer or a :class:`SnapshotReceipt` for a local decision."""

    __slots__ = ()
    kind = ""

    @property
    def recordable(self) -> bool:
        """Whether it goes into the decision's feedback record (only to a service that
        signs receipts, which takes them back; see docs/protocol.md)."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The receipt as JSON, the form ``credit-check receipt verify`` reads."""
        raise NotImplementedError

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler
                                     ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            receipt_from_any,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda r: r.to_dict()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Receipt) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(canonical_json(self.to_dict()))


@dataclass(frozen=True, slots=True)
class SnapshotHeader:
    """The signed header of one snapshot answer: made once per snapshot state and shared
    by every decision made on it."""

    key_id: str
    version: int
    checksum: str
    signature: str
    issued_at: str | None = None
    catalog_serial: int | None = None
    epoch: int | None = None
    header_signature: str | None = None
    # The header as a decision record's journal frame holds it, built once per header.
    form: tuple[Any, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "form", (
            self.key_id, self.version, self.checksum, self.signature, self.issued_at,
            self.catalog_serial, self.epoch, self.header_signature))

    def to_dict(self) -> dict[str, Any]:
        return {"alg": ALG, "key_id": self.key_id, "version": self.version,
                "checksum": self.checksum, "signature": self.signature,
                "issued_at": self.issued_at, "catalog_serial": self.catalog_serial,
                "epoch": self.epoch, "header_signature": self.header_signature}


class SnapshotReceipt(Receipt):
    """A local decision's receipt: the snapshot header it was decided on and the subject's
    prefix (computed when asked for: the request path only keeps a reference)."""

    __slots__ = ("_id", "_prefix", "header")
    kind = "snapshot"

    def __init__(self, header: SnapshotHeader, subject_id: str | None = None, *,
                 prefix: str | None = None) -> None:
        self.header = header
        self._id = subject_id
        self._prefix = prefix

    @property
    def prefix(self) -> str:
        """The subject's prefix (4 bytes of SHA-256 of its id), 8 hex digits."""
        if self._prefix is None:
            assert self._id is not None
            self._prefix = f"{id_prefix(self._id):08x}"
        return self._prefix

    @property
    def recordable(self) -> bool:
        return self.header.header_signature is not None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.header.to_dict(), "prefix": self.prefix}

    def __repr__(self) -> str:
        return (f"SnapshotReceipt(version={self.header.version}, "
                f"key_id={self.header.key_id!r}, prefix={self.prefix!r})")


class ServiceReceipt(Receipt):
    """A service-signed answer: ``signed`` is the canonical JSON of its claims.

    Attributes:
        related: receipts of related persons' answers that the decision also used, as
            ``(role, receipt)`` (e.g. the legal representative's).
    """

    __slots__ = ("alg", "key_id", "related", "signature", "signed")
    kind = "service"

    def __init__(self, *, alg: str, key_id: str, signed: str, signature: str,
                 related: Iterable[tuple[str, ServiceReceipt]] = ()) -> None:
        self.alg = alg
        self.key_id = key_id
        self.signed = signed
        self.signature = signature
        self.related = tuple(related)

    @classmethod
    def from_wire(cls, data: Any) -> ServiceReceipt:
        """From the service's ``receipt`` object.

        Raises:
            InvalidReceipt: a field is missing or of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise InvalidReceipt("the receipt is not a JSON object")
        values = {n: data.get(n) for n in ("alg", "key_id", "signed", "signature")}
        bad = sorted(n for n, v in values.items() if not isinstance(v, str) or not v)
        if bad:
            raise InvalidReceipt(f"the receipt lacks {', '.join(bad)}")
        related = []
        for item in data.get("related") or ():
            if not isinstance(item, Mapping) or not isinstance(item.get("role"), str):
                raise InvalidReceipt("a related receipt lacks its role")
            related.append((str(item["role"]), cls.from_wire(item.get("receipt"))))
        return cls(alg=str(values["alg"]), key_id=str(values["key_id"]),
                   signed=str(values["signed"]), signature=str(values["signature"]),
                   related=related)

    def claims(self) -> dict[str, Any]:
        """The signed claims (not verified here: see :func:`verify_service_receipt`)."""
        try:
            data = json.loads(self.signed)
        except ValueError:
            raise InvalidReceipt("the receipt's signed part is not JSON") from None
        if not isinstance(data, dict) or data.get("type") != RECEIPT_TYPE:
            raise InvalidReceipt(f"the receipt's signed part is not a {RECEIPT_TYPE}")
        return data

    def with_related(self, role: str, other: ServiceReceipt) -> ServiceReceipt:
        return ServiceReceipt(alg=self.alg, key_id=self.key_id, signed=self.signed,
                              signature=self.signature, related=(*self.related, (role, other)))

    @property
    def recordable(self) -> bool:
        return True

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "alg": self.alg, "key_id": self.key_id,
                                "signed": self.signed, "signature": self.signature}
        if self.related:
            data["related"] = [{"role": role, "receipt": r.to_dict()}
                               for role, r in self.related]
        return data

    def __repr__(self) -> str:
        return f"ServiceReceipt(key_id={self.key_id!r})"


def receipt_from_any(value: Any) -> Receipt | None:
    """A receipt from its JSON form (or a receipt, or None as it is).

    Raises:
        InvalidReceipt: an object that is not a receipt of a known kind.
    """
    if value is None or isinstance(value, Receipt):
        return value
    if not isinstance(value, Mapping):
        raise InvalidReceipt("a receipt must be a JSON object")
    kind = value.get("kind")
    if kind == ServiceReceipt.kind:
        return ServiceReceipt.from_wire(value)
    if kind == SnapshotReceipt.kind:
        try:
            header = SnapshotHeader(
                key_id=str(value["key_id"]), version=int(value["version"]),
                checksum=str(value["checksum"]), signature=str(value["signature"]),
                issued_at=_opt(value.get("issued_at"), str),
                catalog_serial=_opt(value.get("catalog_serial"), int),
                epoch=_opt(value.get("epoch"), int),
                header_signature=_opt(value.get("header_signature"), str))
            prefix = str(value["prefix"])
        except (KeyError, TypeError, ValueError):
            raise InvalidReceipt("a snapshot receipt lacks a field or has a wrong type") from None
        return SnapshotReceipt(header, prefix=prefix)
    raise InvalidReceipt(f"unknown receipt kind {str(kind)[:40]!r}; expected 'service' or "
                         "'snapshot'")


def _opt(value: Any, kind: type[Any]) -> Any:
    return None if value is None else kind(value)


# -- verifying -----------------------------------------------------------------------------


def _key_for(keys: Mapping[str, Ed25519PublicKey], kid: str) -> Ed25519PublicKey:
    key = keys.get(kid)
    if key is None:
        known = ", ".join(sorted(keys)) or "none"
        raise InvalidReceipt(
            f"signed with key {kid}, which is not among the keys given ({known}); after a "
            "key rotation, save the service's GET /v1/keys and pass it with --keys")
    return key


def verify_service_receipt(receipt: ServiceReceipt, keys: Mapping[str, Ed25519PublicKey]
                           ) -> dict[str, Any]:
    """Check a service receipt's signature (and its related receipts'); its claims.

    Raises:
        InvalidReceipt: malformed, signed by an unknown key, or the signature fails.
    """
    if receipt.alg != ALG:
        raise InvalidReceipt(f"unknown signature algorithm {receipt.alg[:20]!r}")
    _check(_key_for(keys, receipt.key_id), RECEIPT_CONTEXT + receipt.signed.encode(),
           receipt.signature, "service receipt")
    claims = receipt.claims()
    for _, other in receipt.related:
        verify_service_receipt(other, keys)
    return claims


def verify_snapshot_receipt(receipt: SnapshotReceipt, keys: Mapping[str, Ed25519PublicKey]
                            ) -> bool:
    """Check a snapshot receipt's signatures; True when its header signature (issued_at,
    catalogue serial, epoch) was present and verified too.

    Raises:
        InvalidReceipt: signed by an unknown key, or a signature fails.
    """
    h = receipt.header
    key = _key_for(keys, h.key_id)
    _check(key, snapshot_message(h.version, h.checksum), h.signature,
           f"snapshot version {h.version}")
    if h.header_signature is None:
        return False
    if h.issued_at is None or h.catalog_serial is None or h.epoch is None:
        raise InvalidReceipt("the snapshot header lacks issued_at, catalog_serial or epoch")
    _check(key, header_message(version=h.version, checksum=h.checksum, issued_at=h.issued_at,
                               catalog_serial=h.catalog_serial, epoch=h.epoch),
           h.header_signature, f"snapshot header {h.version}")
    return True


def binds(claims: Mapping[str, Any], subject_id: str) -> bool:
    """Whether a service receipt's claims name ``subject_id`` (a normalised id)."""
    subject = claims.get("subject") or {}
    if "id" in subject:
        return bool(subject["id"] == subject_id)
    return bool(subject.get("id_sha256") == person_hash(str(claims.get("salt", "")),
                                                        subject_id))


def matches_answer(claims: Mapping[str, Any], answer: Mapping[str, Any], subject_id: str
                   ) -> str | None:
    """Why a verified receipt does not describe ``answer``, or None when it does."""
    if not binds(claims, subject_id):
        return "it names another subject"
    if str(claims.get("data_version")) != str(answer.get("data_version")):
        return "its data version differs from the answer's"
    signed = sorted((e.get("entry_id"), e.get("status")) for e in claims.get("entries") or ())
    given = sorted((e.get("entry_id"), e.get("status")) for e in answer.get("entries") or ())
    if signed != given:
        return "its entries differ from the answer's"
    roles = sorted(str(w.get("role")) for w in claims.get("withheld") or ())
    if roles != sorted(str(w.get("role")) for w in answer.get("withheld") or ()):
        return "its withheld roles differ from the answer's"
    return None
