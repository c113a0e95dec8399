"""Freshness and rollback of the signed data (protocol v1.1, DESIGN §9.2): the epoch, the
highest catalogue serial, and the newest signed ``issued_at`` with the moment (on the
client's own clock) it arrived. Persisted in the data dir so a restart forgets nothing.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from credit_check._catalog_state import CatalogState
from credit_check._datadir import write_private
from credit_check._exceptions import InvalidServiceData
from credit_check._transport import CATALOG_SCHEMA

logger = logging.getLogger("credit_check.sync")

FRESHNESS_FILE = "freshness.json"


class EpochChange(enum.Enum):
    """How an answer's epoch compares with the one held."""

    SAME = "same"
    HIGHER = "higher"  # the operator restored a backup: resync in full
    LOWER = "lower"  # refused


class CatalogOrder(enum.Enum):
    """Where a verified catalogue answer stands against the one held."""

    NEWER = "newer"  # use it
    SAME = "same"  # the same serial and content: nothing to do
    OLDER = "older"  # a lower serial within the epoch: ignored and counted
    LOWER_EPOCH = "lower_epoch"  # refused and counted
    HIGHER_EPOCH = "higher_epoch"  # a restored database: use it, resync in full
    DOWNGRADE = "downgrade"  # no signature_v2 after one was seen: refused as an error
    TOO_NEW = "too_new"  # needs a catalogue schema this SDK does not understand


def held_serial(current: CatalogState | None, held: Freshness) -> int:
    """The highest catalogue serial held (0 before any)."""
    return max(held.catalog_serial or 0,
               current.serial if current is not None and current.serial else 0)


def catalog_order(state: CatalogState, current: CatalogState | None,
                  held: Freshness) -> CatalogOrder:
    """How a verified catalogue answer compares with what is held (§9.2): serials never
    move backwards within an epoch."""
    if not state.signed_v2:
        if held.signed or (current is not None and current.signed_v2):
            return CatalogOrder.DOWNGRADE
        return CatalogOrder.NEWER  # a v1 service: no order to check
    assert state.epoch is not None and state.serial is not None
    if (state.schema or 0) > CATALOG_SCHEMA:
        return CatalogOrder.TOO_NEW
    change = held.epoch_change(state.epoch)
    if change is EpochChange.LOWER:
        return CatalogOrder.LOWER_EPOCH
    if change is EpochChange.HIGHER:
        return CatalogOrder.HIGHER_EPOCH
    if state.serial < held_serial(current, held):
        return CatalogOrder.OLDER
    if current is not None and state.serial == current.serial and state.raw == current.raw:
        return CatalogOrder.SAME
    return CatalogOrder.NEWER


def parse_issued_at(value: Any) -> dt.datetime:
    """An answer's ``issued_at`` (ISO 8601 with an offset).

    Raises:
        InvalidServiceData: missing, not a string, or without a UTC offset.
    """
    if not isinstance(value, str):
        raise InvalidServiceData("snapshot: 'issued_at' is missing or not a string")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidServiceData(f"snapshot: 'issued_at' {value[:40]!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise InvalidServiceData("snapshot: 'issued_at' has no UTC offset")
    return moment


@dataclass(frozen=True, slots=True)
class Freshness:
    """What the client has seen of the service's signed freshness fields. Immutable.

    Attributes:
        signed: a ``signature_v2`` answer was ever accepted; from then on an answer
            without one is refused (a downgrade would hide replays).
        epoch: the database epoch held (None before any v1.1 answer).
        catalog_serial: the serial of the catalogue held.
        issued_at: the newest signed ``issued_at`` seen (the service's clock; compared
            only with other ``issued_at`` values, never with ours).
        received_at: when (POSIX seconds on the client's clock) an answer with that
            ``issued_at`` arrived; the data age counts from here.
    """

    signed: bool = False
    epoch: int | None = None
    catalog_serial: int | None = None
    issued_at: dt.datetime | None = None
    received_at: float | None = None

    def epoch_change(self, epoch: int) -> EpochChange:
        """How ``epoch`` compares with the epoch held (SAME before any)."""
        if self.epoch is None or epoch == self.epoch:
            return EpochChange.SAME
        return EpochChange.HIGHER if epoch > self.epoch else EpochChange.LOWER

    def with_issued(self, issued_at: dt.datetime, now: float) -> tuple[Freshness, bool]:
        """The state after a signed answer issued at ``issued_at`` arrived at ``now``, and
        whether it refreshed the data age (a replayed answer does not)."""
        if self.issued_at is not None and issued_at <= self.issued_at:
            return replace(self, signed=True), False
        return replace(self, signed=True, issued_at=issued_at, received_at=now), True

    def age(self, now: float) -> float | None:
        """Seconds since the newest signed answer arrived (None before any)."""
        if self.received_at is None:
            return None
        return max(0.0, now - self.received_at)

    # -- persistence -------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write atomically (mode 0600)."""
        data = {
            "signed": self.signed, "epoch": self.epoch, "catalog_serial": self.catalog_serial,
            "issued_at": self.issued_at.isoformat() if self.issued_at else None,
            "received_at": self.received_at,
        }
        write_private(path, json.dumps(data).encode())

    @classmethod
    def load(cls, path: Path) -> Freshness:
        """Read what :meth:`save` wrote; a missing file is the state before any answer.

        Raises:
            InvalidServiceData: the file is damaged.
            OSError: it cannot be read.
        """
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_bytes())
            issued = data["issued_at"]
            state = cls(
                signed=bool(data["signed"]),
                epoch=_opt_int(data["epoch"]),
                catalog_serial=_opt_int(data["catalog_serial"]),
                issued_at=parse_issued_at(issued) if issued is not None else None,
                received_at=float(data["received_at"]) if data["received_at"] is not None
                else None,
            )
        except (ValueError, KeyError, TypeError, InvalidServiceData):
            raise InvalidServiceData(f"{path}: the freshness record is damaged") from None
        return state


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("not an integer")
    return value
