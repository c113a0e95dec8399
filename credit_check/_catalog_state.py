"""The signed measure catalogue as the SDK holds it: verified on arrival and on load, the
last good copy persisted in the data dir.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from credit_check._crypto import catalog_message, catalog_message_v2, verify
from credit_check._datadir import write_private
from credit_check._exceptions import CatalogError, InvalidServiceData
from credit_check._models import Catalog


@dataclass(frozen=True, slots=True)
class CatalogState:
    """A verified catalogue with the ETag and signatures it came with.

    ``serial``, ``epoch`` and ``schema`` come from a protocol v1.1 answer and are covered
    by ``signature_v2``; a v1 answer has none of them (None).
    """

    catalog: Catalog
    etag: str | None
    signature: str
    raw: dict[str, Any]
    serial: int | None = None
    epoch: int | None = None
    schema: int | None = None
    signature_v2: str | None = None
    upgrade_required: bool = False

    @property
    def signed_v2(self) -> bool:
        """Whether the answer carried the v1.1 signature over serial and epoch."""
        return self.signature_v2 is not None

    @classmethod
    def from_response(
        cls, body: Any, etag: str | None, key: Ed25519PublicKey
    ) -> CatalogState:
        """Verify a ``GET /v1/catalog`` answer ``{catalog, signature}`` (and, from a v1.1
        service, ``serial``, ``epoch``, ``schema`` and ``signature_v2``).

        Raises:
            InvalidServiceData: malformed, unsigned, wrongly signed, or not a valid catalogue.
        """
        if not isinstance(body, dict):
            raise InvalidServiceData("catalogue: the answer is not a JSON object")
        raw, signature = body.get("catalog"), body.get("signature")
        if not isinstance(raw, dict) or not isinstance(signature, str):
            raise InvalidServiceData("catalogue: the answer lacks 'catalog' or 'signature'")
        verify(key, catalog_message(raw), signature, "catalogue")
        serial = epoch = schema = None
        signature_v2 = body.get("signature_v2")
        if signature_v2 is not None:
            serial, epoch, schema = (_int_field(body, n) for n in ("serial", "epoch", "schema"))
            if not isinstance(signature_v2, str):
                raise InvalidServiceData("catalogue: 'signature_v2' is not a string")
            verify(key, catalog_message_v2(raw, serial=serial, epoch=epoch, schema=schema),
                   signature_v2, f"catalogue serial {serial}")
        try:
            catalog = Catalog.load(raw)
        except CatalogError as exc:
            raise InvalidServiceData(f"catalogue: signed but invalid: {exc}") from exc
        return cls(catalog, etag, signature, raw, serial, epoch, schema,
                   signature_v2 if isinstance(signature_v2, str) else None,
                   body.get("upgrade_required") is True)

    def save(self, path: Path) -> None:
        """Persist atomically (mode 0600) with the signature, so :meth:`load` re-verifies."""
        data = {"catalog": self.raw, "signature": self.signature, "etag": self.etag,
                "serial": self.serial, "epoch": self.epoch, "schema": self.schema,
                "signature_v2": self.signature_v2}
        write_private(path, json.dumps(data, ensure_ascii=False).encode())

    @classmethod
    def load(cls, path: Path, key: Ed25519PublicKey) -> CatalogState:
        """Read a persisted catalogue, verifying its signature again.

        Raises:
            InvalidServiceData: the file is damaged or tampered with.
            OSError: the file cannot be read.
        """
        try:
            data = json.loads(path.read_bytes())
        except ValueError:
            raise InvalidServiceData(f"{path}: not a JSON catalogue file") from None
        if not isinstance(data, dict):
            raise InvalidServiceData(f"{path}: not a catalogue file")
        etag = data.get("etag")
        return cls.from_response(data, etag if isinstance(etag, str) else None, key)


def _int_field(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidServiceData(f"catalogue: {name!r} is missing or not an integer")
    return value
