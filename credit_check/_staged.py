"""The service's staged catalogue (a dry-run beside the current one, ``GET
/v1/catalog?stage=1``) as the SDK holds it: verified against its own signing context,
so that it can never be taken for the current catalogue, and never persisted."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from credit_check._crypto import staged_catalog_message, verify
from credit_check._exceptions import CatalogError, InvalidServiceData
from credit_check._models import Catalog
from credit_check._transport import CATALOG_SCHEMA, Transport

logger = logging.getLogger("credit_check.sync")


@dataclass(frozen=True, slots=True)
class StagedCatalog:
    """A verified staged catalogue with its staging serial."""

    catalog: Catalog
    serial: int


def _offered(capabilities: dict[str, Any] | None) -> tuple[int, int] | None:
    # (serial, schema) of the staged catalogue the capabilities name, if any
    info = (capabilities or {}).get("staged_catalog")
    if not isinstance(info, dict):
        return None
    serial, schema = info.get("serial"), info.get("schema", 1)
    if type(serial) is not int or type(schema) is not int:
        raise InvalidServiceData("capabilities: staged_catalog has no integer serial")
    return serial, schema


def sync_staged(transport: Transport, key: Ed25519PublicKey,
                capabilities: dict[str, Any] | None,
                held: StagedCatalog | None) -> StagedCatalog | None:
    """The staged catalogue the service offers now: ``held`` when unchanged, None when
    nothing is staged (or it needs a newer schema, logged).

    Raises:
        ServiceError: the answer could not be had or does not verify.
    """
    offered = _offered(capabilities)
    if offered is None:
        return None
    serial, schema = offered
    if schema > CATALOG_SCHEMA:
        logger.warning("the staged catalogue needs catalogue schema %d: it is not run in "
                       "shadow by this version", schema)
        return None
    if held is not None and held.serial == serial:
        return held
    body = transport.request("GET", "/v1/catalog", params={"stage": "1"}).body
    if not isinstance(body, dict) or not isinstance(body.get("catalog"), dict):
        raise InvalidServiceData("staged catalogue: the answer lacks 'catalog'")
    raw, signature = body["catalog"], body.get("signature_staged")
    got = [body.get(n) for n in ("serial", "epoch", "schema")]
    if not isinstance(signature, str) or any(type(v) is not int for v in got):
        raise InvalidServiceData("staged catalogue: serial, epoch, schema or its signature "
                                 "is missing")
    number, epoch, its_schema = (int(v) for v in got)  # type: ignore[arg-type]
    verify(key, staged_catalog_message(raw, serial=number, epoch=epoch, schema=its_schema),
           signature, "staged catalogue")
    try:
        catalog = Catalog.load(raw)
    except CatalogError as exc:
        raise InvalidServiceData(f"staged catalogue: signed but invalid: {exc}") from exc
    logger.info("the service stages catalogue %s (staging serial %d): every check is also "
                "decided on it, and the differences are counted (status().shadow_*)",
                catalog.version, number)
    return StagedCatalog(catalog, number)
