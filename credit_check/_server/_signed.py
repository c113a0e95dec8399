"""The signed answers of the sandbox (protocol v1 and v1.1, DESIGN §9.2–9.3): snapshots and
deltas signed afresh with ``issued_at``, ``catalog_serial`` and ``epoch``, and the
catalogue with its serial, epoch and schema.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from credit_check._crypto import (
    Signer,
    b64e,
    catalog_message,
    catalog_message_v2,
    pack_prefixes,
    snapshot_message_v2,
)
from credit_check._models import CST
from credit_check._receipts import header_message
from credit_check._server._store import Delta, Head, SnapshotState, StoredCatalog


def issued_at() -> str:
    """This instance's clock, as signed into every snapshot answer."""
    return dt.datetime.now(CST).isoformat(timespec="microseconds")


def snapshot_answer(signer: Signer, state: SnapshotState, head: Head,
                    delta: Delta | None = None) -> dict[str, Any]:
    """A full snapshot (``delta`` None) or a delta answer, with both signatures."""
    now = issued_at()
    body: dict[str, Any] = {"version": state.version, "full": delta is None,
                            "checksum": state.checksum, "signature": state.signature,
                            "count": state.count, "issued_at": now,
                            "catalog_serial": head.catalog_serial, "epoch": head.epoch}
    if delta is None:
        body["prefixes"] = b64e(state.packed)
        message = snapshot_message_v2(version=state.version, checksum=state.checksum,
                                      issued_at=now, catalog_serial=head.catalog_serial,
                                      epoch=head.epoch)
    else:
        changed = b64e(pack_prefixes(delta.changed))
        lifted = sorted(delta.lifted)
        body.update(since=delta.since, added=b64e(pack_prefixes(delta.added)),
                    removed=b64e(pack_prefixes(delta.removed)), changed=changed,
                    lifted=lifted)
        message = snapshot_message_v2(version=state.version, checksum=state.checksum,
                                      issued_at=now, catalog_serial=head.catalog_serial,
                                      epoch=head.epoch, since=delta.since, changed=changed,
                                      lifted=lifted)
    body["signature_v2"] = signer.sign(message)
    # The header alone, for the receipts of local decisions (§9.4).
    body["header_signature"] = signer.sign(header_message(
        version=state.version, checksum=state.checksum, issued_at=now,
        catalog_serial=head.catalog_serial, epoch=head.epoch))
    return body


def catalog_etag(stored: StoredCatalog) -> str:
    digest = hashlib.sha256(catalog_message(stored.raw)).hexdigest()[:16]
    return f'"{stored.catalog.version}-{stored.serial}-{digest}"'


def catalog_answer(signer: Signer, stored: StoredCatalog, epoch: int,
                   upgrade_required: bool) -> dict[str, Any]:
    return {"catalog": stored.raw, "signature": signer.sign(catalog_message(stored.raw)),
            "serial": stored.serial, "epoch": epoch, "schema": stored.schema,
            "signature_v2": signer.sign(catalog_message_v2(
                stored.raw, serial=stored.serial, epoch=epoch, schema=stored.schema)),
            "upgrade_required": upgrade_required}
