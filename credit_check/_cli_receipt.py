"""``credit-check receipt verify FILE [--id ID]``: check a receipt (查询凭证) offline with the
pinned service key and say exactly what it proves.

Exit codes: 0 every receipt verified, 1 one did not (tampered, another key, another
subject), 2 bad input (no such file, not a receipt, no key to verify with).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from credit_check._crypto import b64d, id_prefix, load_public_key
from credit_check._datadir import SERVICE_KEY_FILE
from credit_check._exceptions import (
    ConfigurationError,
    InvalidReceipt,
    InvalidServiceData,
    InvalidSubjectId,
)
from credit_check._ids import mask_id
from credit_check._models import Subject
from credit_check._receipts import (
    ServiceReceipt,
    SnapshotReceipt,
    binds,
    key_id,
    keys_message,
    receipt_from_any,
    verify_service_receipt,
    verify_snapshot_receipt,
)
from credit_check._settings import DEFAULT_DATA_DIR

EXIT_NOT_VERIFIED = 1
EXIT_BAD_INPUT = 2


class _BadInput(Exception):
    pass


def pinned_keys(given: list[str], keys_file: str | None) -> dict[str, Ed25519PublicKey]:
    """The keys to verify with: ``--key``, ``CREDIT_CHECK_SERVICE_PUBLIC_KEY``, the key
    the data directory trusts, and the keys of a saved ``GET /v1/keys`` answer whose
    signature verifies with one of those.

    Raises:
        _BadInput: a key is malformed, the key list does not verify, or there is no key.
    """
    texts = list(given)
    env = os.environ.get("CREDIT_CHECK_SERVICE_PUBLIC_KEY", "").strip()
    if env:
        texts.append(env)
    stored = Path(os.environ.get("CREDIT_CHECK_DATA_DIR") or DEFAULT_DATA_DIR).expanduser() \
        / SERVICE_KEY_FILE
    if stored.is_file():
        texts.append(stored.read_text().strip())
    keys: dict[str, Ed25519PublicKey] = {}
    for text in texts:
        try:
            keys[key_id(text)] = load_public_key(text)
        except ConfigurationError:
            raise _BadInput(f"--key {text[:16]}…: not a base64 Ed25519 public key") from None
    if keys_file is not None:
        keys.update(_listed_keys(Path(keys_file), keys))
    if not keys:
        raise _BadInput("no service key to verify with: pass --key BASE64 (from the service's "
                        "GET /v1/keys) or set CREDIT_CHECK_SERVICE_PUBLIC_KEY")
    return keys


def _listed_keys(path: Path, trusted: Mapping[str, Ed25519PublicKey]
                 ) -> dict[str, Ed25519PublicKey]:
    data = _read_json(path)
    listed = data.get("keys") if isinstance(data, dict) else None
    signature = data.get("signature") if isinstance(data, dict) else None
    if not isinstance(listed, list) or not isinstance(signature, str):
        raise _BadInput(f"{path}: not a saved GET /v1/keys answer (keys and signature)")
    for key in trusted.values():
        try:
            key.verify(b64d(signature), keys_message(listed))
        except (InvalidSignature, InvalidServiceData, ValueError):
            continue  # signed by another key: try the next pinned one
        found: dict[str, Ed25519PublicKey] = {}
        for item in listed:
            try:
                found[str(item["kid"])] = load_public_key(str(item["public_key"]))
            except (KeyError, TypeError, ConfigurationError):
                raise _BadInput(f"{path}: a listed key is malformed") from None
        return found
    raise _BadInput(f"{path}: the key list is not signed by a key you pinned (--key or "
                    "CREDIT_CHECK_SERVICE_PUBLIC_KEY); fetch it from the service again")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _BadInput(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _BadInput(f"{path}: not a JSON file ({type(exc).__name__})") from None


def receipts_in(data: Any) -> Iterator[Any]:
    """The receipts of a file: a receipt, an object with a ``receipt`` (a decision or a
    record), a list of those, or a case report (``records``)."""
    if isinstance(data, list):
        for item in data:
            yield from receipts_in(item)
    elif isinstance(data, dict):
        if "kind" in data and data.get("kind") in ("service", "snapshot"):
            yield data
        elif isinstance(data.get("records"), list):
            yield from receipts_in(data["records"])
        elif data.get("receipt") is not None:
            yield data["receipt"]


def verify_one(raw: Any, keys: Mapping[str, Ed25519PublicKey], subject_id: str | None
               ) -> dict[str, Any]:
    """Verify one receipt; what it proves.

    Raises:
        InvalidReceipt: it does not verify, or names another subject than ``subject_id``.
    """
    receipt = receipt_from_any(raw)
    if isinstance(receipt, ServiceReceipt):
        return _service(receipt, keys, subject_id)
    assert isinstance(receipt, SnapshotReceipt)
    return _snapshot(receipt, keys, subject_id)


def _service(receipt: ServiceReceipt, keys: Mapping[str, Ed25519PublicKey],
             subject_id: str | None) -> dict[str, Any]:
    claims = verify_service_receipt(receipt, keys)
    subject = claims.get("subject") or {}
    person = "id" not in subject
    if subject_id is not None and not binds(claims, subject_id):
        raise InvalidReceipt(f"the receipt names another subject than {mask_id(subject_id)}")
    if not person:
        who = f"统一社会信用代码 {subject['id']}"
    elif subject_id is not None:
        who = f"自然人 {mask_id(subject_id)}（已核对）/ the natural person with the id given"
    else:
        who = ("自然人（未核对）/ a natural person, named only by a salted hash: give --id to "
               "check it is the person you mean")
    entries = [f"{e.get('entry_id')} {e.get('list_code')} [{e.get('status')}] "
               f"{e.get('effective_from') or ''}–{e.get('effective_until') or ''}"
               for e in claims.get("entries") or ()]
    withheld = [str(w.get("role")) for w in claims.get("withheld") or ()]
    proves = (
        f"查询凭证有效：信用信息服务（密钥 {receipt.key_id}）于 {claims.get('as_of')} 以数据版本 "
        f"{claims.get('data_version')} 答复 {claims.get('department')} 关于 {who} 的查询，"
        f"有效名单条目 {len(entries)} 条。 / A signed answer of the list service (key "
        f"{receipt.key_id}): at {claims.get('as_of')}, data version "
        f"{claims.get('data_version')}, it told {claims.get('department')} that this subject "
        f"has {len(entries)} counting entr{'y' if len(entries) == 1 else 'ies'}"
        + (f" and withheld the roles {', '.join(withheld)}" if withheld else "")
        + ". It proves what the service answered, not what the application decided on it.")
    return {"verified": True, "kind": "service", "key_id": receipt.key_id,
            "subject_checked": subject_id is not None or not person, "entries": entries,
            "withheld": withheld, "related": [role for role, _ in receipt.related],
            "department": claims.get("department"), "as_of": claims.get("as_of"),
            "data_version": claims.get("data_version"), "proves": proves}


def _snapshot(receipt: SnapshotReceipt, keys: Mapping[str, Ed25519PublicKey],
              subject_id: str | None) -> dict[str, Any]:
    fresh = verify_snapshot_receipt(receipt, keys)
    h = receipt.header
    if subject_id is not None and f"{id_prefix(subject_id):08x}" != receipt.prefix:
        raise InvalidReceipt(f"the receipt's prefix {receipt.prefix} is not the prefix of "
                             f"{mask_id(subject_id)}")
    when = (f"，签发于 {h.issued_at}（目录序号 {h.catalog_serial}，纪元 {h.epoch}）"
            if fresh else "")
    when_en = (f", issued at {h.issued_at} (catalogue serial {h.catalog_serial}, epoch "
               f"{h.epoch})" if fresh else " (its issue time is not signed)")
    checked = ("与所给证件号码一致 / matches the id given" if subject_id is not None
               else "未核对 / not checked: give --id")
    proves = (
        f"本地判定凭证有效：判定所用数据为信用信息服务（密钥 {h.key_id}）签名的快照版本 {h.version}"
        f"（校验和 {h.checksum[:16]}…）{when}；主体前缀 {receipt.prefix}（{checked}）。"
        f"仅证明判定所用的签名数据，不证明该前缀不在快照中，也不是对该主体的查询答复。 / A local "
        f"decision's receipt: the service (key {h.key_id}) signed snapshot version "
        f"{h.version} (checksum {h.checksum[:16]}…){when_en}, the data the decision names "
        f"as its basis; the subject's prefix is {receipt.prefix}. It proves which signed data "
        "a local decision used, nothing more: not that the prefix was absent from that set, "
        "nor any answer about the subject (check_many(…, online=True) gets signed answers).")
    return {"verified": True, "kind": "snapshot", "key_id": h.key_id, "version": h.version,
            "issued_at_signed": fresh, "prefix": receipt.prefix,
            "subject_checked": subject_id is not None, "proves": proves}


def verify(args: argparse.Namespace) -> int:
    """Run ``credit-check receipt verify``."""
    try:
        subject_id = Subject.parse(args.id).id if args.id else None
    except InvalidSubjectId as exc:
        print(f"credit-check: error: --id: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        keys = pinned_keys(args.key or [], args.keys)
        found = list(receipts_in(_read_json(Path(args.file))))
    except _BadInput as exc:
        print(f"credit-check: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if not found:
        print(f"credit-check: error: {args.file}: no receipt in the file (a receipt, a "
              "decision or record with one, or a list of them)", file=sys.stderr)
        return EXIT_BAD_INPUT
    results = []
    for raw in found:
        try:
            results.append(verify_one(raw, keys, subject_id))
        except InvalidReceipt as exc:
            results.append({"verified": False, "reason": str(exc),
                            "proves": f"凭证无效 / receipt NOT verified: {exc}"})
    if args.json:
        json.dump(results, sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        for i, result in enumerate(results, 1):
            prefix = f"[{i}/{len(results)}] " if len(results) > 1 else ""
            print(prefix + result["proves"])
    return 0 if all(r["verified"] for r in results) else EXIT_NOT_VERIFIED


def receipt(args: argparse.Namespace) -> int:
    """``credit-check receipt ACTION``."""
    return verify(args)
