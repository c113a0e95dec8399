"""The small result types of the Checker: a group of decisions (batch or consortium bid)
and the Checker's status.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from credit_check._models import Decision, Outcome


@dataclass(frozen=True, slots=True)
class CheckerStatus:
    """A Checker's health, for readiness probes and dashboards.

    Attributes:
        ready: a catalogue and a snapshot are loaded, so checks are decided locally.
        snapshot_version: the version of the snapshot in use, if any.
        snapshot_age: seconds since that snapshot was last confirmed by the service.
        catalog_version: the version of the catalogue in use, if any.
        last_error: the most recent sync or lookup failure, cleared by a good sync.
        outbox_pending: feedback records not yet delivered (None without feedback).
        post_check_pending: degraded decisions waiting for a post-check.
        outbox_undecryptable: records kept aside because they do not decrypt with the
            current key (an error: see ``credit-check outbox status`` and ``salvage``).
        outbox_damaged: damaged outbox files moved aside, awaiting ``outbox salvage``.
        outbox_dead_lettered: records the service rejected.
        sender_pid: the process of this data directory that delivers feedback, if any.
        post_check_set_aside: queued degraded decisions that cannot be post-checked (they
            do not decrypt or parse); an error, kept for an operator.
        stale: the data is stale (rule 12): no snapshot, or its newest signed answer is
            older than ``max_data_age``; subjects are then looked up online.
        data_age: seconds since the newest signed answer arrived (the client's clock).
        stale_reason: why the data is stale, or None.
        degraded_causes: what currently degrades decisions, each ``"code: explanation"``
            with code ``no_catalogue``, ``stale_data``, ``breaker_open``,
            ``withheld:<reason>`` or ``upgrade_required``.
        breaker: the circuit breaker's state, ``closed``, ``open`` or ``half_open``.
        catalog_serial: the serial of the catalogue in use (protocol v1.1), if any.
        epoch: the service's database epoch held (protocol v1.1), if any.
        freshness_signed: the service signs its answers' ``issued_at`` (v1.1); False for
            a v1 service, whose freshness is unproven.
        refused_answers: signed answers refused as older than the data held (lagging
            instances or replays) since the start.
        region: the deployment's region (``CREDIT_CHECK_REGION``), the default
            ``Transaction.region`` that selects the catalogue's supplements.
        unsupported_measures: measures of the catalogue this version cannot apply, each
            ``"code: why"`` (an unknown effect or target); a check whose entries one
            matches is decided at least review, degraded (rule 11).
        unknown_scenarios: scenario codes checked that neither this version nor the
            catalogue knows (decided as the fallback, at least review, degraded).
        shadow_catalog_version: the catalogue every check is also decided on (a dry-run:
            ``Checker(shadow_catalog=...)`` or the service's staged catalogue), if any.
        shadow_checks: checks decided on it since it became the shadow catalogue.
        shadow_diff: of those, the ones it decides otherwise (outcome, measures or
            degradation).
        shadow_skipped: checks it could not decide without a lookup (``check_local``) or
            because the service did not answer.
        shadow_errors: shadow decisions that failed (logged; the live decision stands).
        shadow_changes: the differences by ``"live->shadow"`` outcome.
        shadow_diff_sample: the latest differences (at most 50), subjects masked.
        watched: decisions watched now (open cases and grants; None without feedback).
        watch_refused: decisions not watched because the watch list was full (an error:
            raise ``watch_limit`` or close finished cases).
        commitments_open: commitments not yet fulfilled, waived or breached.
        commitments_breached: commitments reported breached (违诺).
    """

    ready: bool
    snapshot_version: int | None
    snapshot_age: float | None
    catalog_version: str | None
    last_error: str | None
    outbox_pending: int | None
    post_check_pending: int
    outbox_undecryptable: int = 0
    outbox_damaged: tuple[str, ...] = ()
    outbox_dead_lettered: int = 0
    sender_pid: int | None = None
    post_check_set_aside: int = 0
    stale: bool = False
    data_age: float | None = None
    stale_reason: str | None = None
    degraded_causes: tuple[str, ...] = ()
    breaker: str = "closed"
    catalog_serial: int | None = None
    epoch: int | None = None
    freshness_signed: bool = False
    refused_answers: int = 0
    region: str | None = None
    unsupported_measures: tuple[str, ...] = ()
    unknown_scenarios: tuple[str, ...] = ()
    shadow_catalog_version: str | None = None
    shadow_checks: int = 0
    shadow_diff: int = 0
    shadow_skipped: int = 0
    shadow_errors: int = 0
    shadow_changes: dict[str, int] = field(default_factory=dict)
    shadow_diff_sample: tuple[dict[str, Any], ...] = ()
    watched: int | None = None
    watch_refused: int = 0
    commitments_open: int = 0
    commitments_breached: int = 0


class DecisionGroup(Sequence[Decision]):
    """The decisions of a batch or a consortium bid (联合体, rule 7), in the order asked.

    Attributes:
        decisions: the member decisions.
        outcome: the most severe member outcome.
    """

    __slots__ = ("decisions", "outcome")

    def __init__(self, decisions: Iterable[Decision]) -> None:
        self.decisions: tuple[Decision, ...] = tuple(decisions)
        self.outcome: Outcome = Outcome.most_severe(d.outcome for d in self.decisions)

    @overload
    def __getitem__(self, index: int) -> Decision: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Decision]: ...
    def __getitem__(self, index: int | slice) -> Decision | Sequence[Decision]:
        return self.decisions[index]

    def __len__(self) -> int:
        return len(self.decisions)

    def __iter__(self) -> Iterator[Decision]:
        return iter(self.decisions)

    @property
    def degraded(self) -> bool:
        """Whether any member decision was degraded."""
        return any(d.degraded for d in self.decisions)

    def __repr__(self) -> str:
        return f"DecisionGroup(outcome={self.outcome.value!r}, members={len(self.decisions)})"
