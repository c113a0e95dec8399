"""A catalogue dry-run: every check is also decided on a shadow catalogue (one the caller
gives, or the one the service stages) and the differences are counted, with a bounded
sample, so a province sees what a new catalogue would change before it applies it.

The shadow decision never changes the live one, is never recorded or post-checked, and
a failure of it is counted and logged, never raised into the check.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from credit_check._catalog_layers import merge
from credit_check._exceptions import CatalogError, ConfigurationError
from credit_check._models import Catalog, Decision, Subject, Transaction

if TYPE_CHECKING:
    from credit_check._sync import Syncer

logger = logging.getLogger("credit_check")

SAMPLE_SIZE = 50

# Decides a subject on a catalogue without recording anything; ``local``: from the snapshot
# and cache only. None: it could not be decided so (counted as skipped).
Decide = Callable[[Subject, Transaction, Catalog, bool], Decision | None]


def load_shadow(given: Catalog | Mapping[str, Any] | str | os.PathLike[str]) -> Catalog:
    """A shadow catalogue from a Catalog, its JSON as a dict (a base with
    ``supplements`` is merged), or a JSON file.

    Raises:
        ConfigurationError: naming the file and what is wrong with it.
    """
    if isinstance(given, Catalog):
        return given
    where = "shadow_catalog"
    if isinstance(given, Mapping):
        data: Any = dict(given)
    else:
        path = Path(given)
        where = f"shadow_catalog {path}"
        try:
            data = json.loads(path.read_text("utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"{where}: cannot read it ({exc.strerror})") from None
        except ValueError as exc:
            raise ConfigurationError(f"{where}: not JSON ({exc})") from None
    try:
        if isinstance(data, dict) and isinstance(data.get("supplements"), list):
            data = merge(data, data["supplements"])
        return Catalog.load(data)
    except CatalogError as exc:
        raise ConfigurationError(f"{where}: {exc}") from None


def difference(live: Decision, shadow: Decision) -> dict[str, Any] | None:
    """What the shadow decision would change (None: nothing): the outcome, the measures
    applied (by code and layer) and whether it is degraded; the subject masked."""
    was = {(m.code, m.layer) for m in live.measures}
    now = {(m.code, m.layer) for m in shadow.measures}
    if live.outcome is shadow.outcome and was == now and live.degraded == shadow.degraded:
        return None
    t = live.transaction
    return {
        "decision_id": live.decision_id, "decided_at": live.decided_at.isoformat(),
        "subject": live.subject.masked_id, "scenario": str(t.scenario), "region": t.region,
        "live": live.outcome.value, "shadow": shadow.outcome.value,
        "added": sorted(f"{c}@{x}" if x else c for c, x in now - was),
        "removed": sorted(f"{c}@{x}" if x else c for c, x in was - now),
        "live_degraded": live.degraded, "shadow_degraded": shadow.degraded,
        "live_catalog": live.catalog_version, "shadow_catalog": shadow.catalog_version,
    }


class ShadowRun:
    """Decides every check again on the shadow catalogue and counts the differences.

    Args:
        decide: decides on a given catalogue without recording anything.
        syncer: whose staged catalogue is used when no catalogue is given.
        given: the caller's shadow catalogue (it takes precedence over a staged one).
    """

    def __init__(self, decide: Decide, syncer: Syncer, given: Catalog | None = None) -> None:
        self._decide = decide
        self._syncer = syncer
        self._given = given
        self._lock = threading.Lock()
        self.checks = 0
        self.diff = 0
        self.skipped = 0
        self.errors = 0
        self.changes: collections.Counter[str] = collections.Counter()
        self.sample: collections.deque[dict[str, Any]] = collections.deque(maxlen=SAMPLE_SIZE)
        self._version: str | None = None

    @property
    def active(self) -> bool:
        """Whether a shadow catalogue is there to run."""
        return self._given is not None or self._syncer.staged is not None

    def catalog(self) -> Catalog | None:
        """The shadow catalogue now: the given one, else the service's staged one."""
        if self._given is not None:
            return self._given
        staged = self._syncer.staged
        return staged.catalog if staged is not None else None

    def compare(self, subject: Subject, transaction: Transaction, live: Decision,
                local: bool = False) -> None:
        """Decide ``subject`` on the shadow catalogue and count any difference. Never
        raises: a failure is counted and logged.

        Args:
            local: decide from the snapshot and cache only (an event loop's check).
        """
        catalog = self.catalog()
        if catalog is None:
            return
        try:
            shadow = self._decide(subject, transaction, catalog, local)
            found = difference(live, shadow) if shadow is not None else None
        except Exception:  # a dry-run must never break the check it shadows
            with self._lock:
                self.errors += 1
                first = self.errors == 1
            if first:
                logger.exception("the shadow decision on catalogue %s failed (counted in "
                                 "status().shadow_errors; the live decision stands)",
                                 catalog.version)
            return
        with self._lock:
            if catalog.version != self._version:
                self._reset(catalog.version)
            self.checks += 1
            if shadow is None:
                self.skipped += 1
            elif found is not None:
                self.diff += 1
                self.changes[f"{found['live']}->{found['shadow']}"] += 1
                self.sample.append(found)

    def _reset(self, version: str) -> None:
        # Counts are per shadow catalogue: a new one starts afresh.
        self._version = version
        self.checks = self.diff = self.skipped = 0
        self.changes.clear()
        self.sample.clear()

    def report(self) -> dict[str, Any]:
        """The counts and the sample, JSON-ready (``status()`` and ``catalog diff``)."""
        with self._lock:
            catalog = self.catalog()
            return {
                "shadow_catalog_version": catalog.version if catalog is not None else None,
                "shadow_checks": self.checks, "shadow_diff": self.diff,
                "shadow_skipped": self.skipped, "shadow_errors": self.errors,
                "shadow_changes": dict(sorted(self.changes.items())),
                "shadow_diff_sample": tuple(self.sample),
            }
