"""The data-path half of ``Checker.status()``: freshness, the breaker and the causes that
currently degrade decisions (rules 9, 11 and 12)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from credit_check._rules import withheld_cause

if TYPE_CHECKING:
    from credit_check._engine import Engine
    from credit_check._sync import Syncer
    from credit_check._transport import Transport


def stale_reason(syncer: Syncer) -> str | None:
    """Why the data is stale now (rule 12), or None when it is fresh."""
    if syncer.snapshot is None:
        return "no snapshot yet: every subject is looked up online"
    age = syncer.data_age()
    if age is None:
        return ("the snapshot's freshness is unknown (no signed answer recorded since it "
                "was persisted): subjects are looked up online until the next sync")
    if syncer.usable_snapshot(syncer.now()) is None:
        return (f"the newest signed answer arrived {age:.0f} s ago (max_data_age "
                f"{syncer.max_data_age:.0f} s): subjects are looked up online")
    if syncer.catalog_behind is not None:
        held = syncer.catalog.serial if syncer.catalog is not None else None
        return (f"the catalogue held (serial {held}) is older than the service's "
                f"(serial {syncer.catalog_behind})")
    return None


def data_status(syncer: Syncer, engine: Engine, transport: Transport) -> dict[str, Any]:
    """The :class:`~credit_check.CheckerStatus` fields of the data path, by name."""
    breaker = transport.breaker
    why = stale_reason(syncer)
    causes: list[str] = []
    if syncer.catalog is None:
        causes.append("no_catalogue: 尚无措施目录 / no measure catalogue yet: every check "
                      "gets the scenario's fallback")
    if why is not None:
        causes.append(f"stale_data: {why}")
    if breaker.is_open:
        causes.append(f"breaker_open: 信用信息服务不可达 / the list service is unreachable; "
                      f"lookups answer the fallback at once (next probe in "
                      f"{breaker.retry_in:.1f} s)")
    for reason in sorted(engine.withheld_causes):
        zh, en = withheld_cause(reason)
        causes.append(f"withheld:{reason}: {zh} / {en}")
    if syncer.upgrade_required:
        causes.append("upgrade_required: the service's current catalogue needs a newer "
                      "credit-check; the newest catalogue this version understands is used")
    catalog, fresh = syncer.catalog, syncer.freshness
    return {
        "stale": why is not None,
        "data_age": syncer.data_age(),
        "stale_reason": why,
        "degraded_causes": tuple(causes),
        "breaker": breaker.state.value,
        "catalog_serial": catalog.serial if catalog is not None else None,
        "epoch": fresh.epoch,
        "freshness_signed": fresh.signed,
        "refused_answers": syncer.refused,
    }
