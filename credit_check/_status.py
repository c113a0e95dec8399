"""The data-path half of ``Checker.status()``: freshness, the breaker and the causes that
currently degrade decisions (rules 9, 11 and 12)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from credit_check._rules import withheld_cause

if TYPE_CHECKING:
    from credit_check._engine import Engine
    from credit_check._sync import Syncer
    from credit_check._transport import Transport


def data_status(syncer: Syncer, engine: Engine, transport: Transport) -> dict[str, Any]:
    """The :class:`~credit_check.CheckerStatus` fields of the data path, by name."""
    breaker = transport.breaker
    stale_reason = syncer.stale_reason()
    causes: list[str] = []
    if syncer.catalog is None:
        causes.append("no_catalogue: 尚无措施目录 / no measure catalogue yet: every check "
                      "gets the scenario's fallback")
    if stale_reason is not None:
        causes.append(f"stale_data: {stale_reason}")
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
        "stale": stale_reason is not None,
        "data_age": syncer.data_age(),
        "stale_reason": stale_reason,
        "degraded_causes": tuple(causes),
        "breaker": breaker.state.value,
        "catalog_serial": catalog.serial if catalog is not None else None,
        "epoch": fresh.epoch,
        "freshness_signed": fresh.signed,
        "refused_answers": syncer.refused,
    }
