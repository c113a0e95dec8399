"""Background sync of the signed snapshot of subject-id prefixes and of the measure
catalogue: a daemon thread polling with jitter, persisting each good copy to the data
directory, and keeping the last good copy serving whatever goes wrong.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from credit_check._catalog_state import CatalogState
from credit_check._datadir import DataDir
from credit_check._exceptions import (
    CreditCheckError,
    InvalidServiceData,
    ServiceRejected,
    ServiceUnavailable,
)
from credit_check._freshness import (
    FRESHNESS_FILE,
    CatalogOrder,
    Freshness,
    catalog_order,
    held_serial,
    parse_issued_at,
)
from credit_check._models import CST
from credit_check._poller import Poller
from credit_check._snapshot import (
    EpochRaised,
    SnapshotChecksumMismatch,
    SnapshotRollback,
    SnapshotState,
)
from credit_check._transport import CATALOG_SCHEMA, Transport

logger = logging.getLogger("credit_check.sync")

SNAPSHOT_FILE = "snapshot.bin"
CATALOG_FILE = "catalog.json"
# Degraded causes (status().degraded_causes) that the sync itself knows of.
CAUSE_STALE = "stale_data"
CAUSE_UPGRADE = "upgrade_required"
# In the decision clock's own zone: datetimes sharing a tzinfo compare without offsets.
_NEVER = dt.datetime.min.replace(tzinfo=CST)


class Syncer:
    """Keeps a snapshot and a catalogue current; the attributes are read without a lock
    (each is replaced whole by one assignment, never mutated).

    Freshness (protocol v1.1, DESIGN §9.2): catalogue serials and snapshot versions never
    move backwards within an epoch (an older answer is ignored, logged and counted); a
    higher epoch means a full resync; the data age counts, on the client's clock, from the
    last answer whose signed ``issued_at`` is newer than every one seen, so a replayed
    answer does not refresh it. A v1 service signs no ``issued_at``: its data counts as
    fresh from each successful sync, and :attr:`freshness` says it is unproven.

    Args:
        transport: the checker's transport (its breaker tells when the service is down).
        data_dir: where the snapshot, catalogue and freshness record are persisted.
        pinned_key: ``CREDIT_CHECK_SERVICE_PUBLIC_KEY``; without it the key is trusted on
            first use (``GET /v1/keys``) and stored.
        interval: seconds between syncs (each jittered by ±20 %).
        max_data_age: seconds after which the data is stale (rule 12).
        on_success: called in the sync thread after each fully successful sync.
        timer: POSIX seconds on the client's clock, for the data age.

    Raises:
        ConfigurationError: the pinned key is malformed.
    """

    def __init__(
        self,
        transport: Transport,
        data_dir: DataDir,
        *,
        pinned_key: str | None,
        interval: float,
        max_data_age: float = 3600.0,
        on_success: Callable[[], None] = lambda: None,
        timer: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self._data_dir = data_dir
        self._pinned = pinned_key
        self.max_data_age = max_data_age
        self._timer = timer
        self._key: Ed25519PublicKey | None = data_dir.service_key(pinned_key)
        self._key_confirmed = bool(pinned_key)
        self.snapshot: SnapshotState | None = None
        self.catalog: CatalogState | None = None
        self.freshness = Freshness()
        # The snapshot is used for local decisions until this moment (timer seconds, and
        # the same as a datetime: comparing datetimes is 20 times cheaper than timestamp()).
        self.fresh_until = float("-inf")
        self.fresh_until_at = _NEVER
        self.capabilities: dict[str, Any] | None = None
        self.catalog_behind: int | None = None  # the service's serial, when ours is older
        self.upgrade_required = False
        self.refused = 0  # signed answers older than what is held (ignored)
        self.replayed = 0  # answers whose issued_at was not newer (age not refreshed)
        self.failed_syncs = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None
        self.ready = threading.Event()
        self._settled = threading.Condition()
        self._lock = threading.Lock()
        self._poller = Poller(self.sync_once, interval=interval, on_success=on_success)
        self._said: set[str] = set()

    # -- persisted state ---------------------------------------------------------------

    def load(self) -> None:
        """Load the persisted snapshot, catalogue and freshness record, so a restarted
        process serves at once (the snapshot only while its data age allows).

        A missing, damaged or unverifiable file is logged and skipped.
        """
        try:
            self.freshness = Freshness.load(self._data_dir.file(FRESHNESS_FILE))
        except (CreditCheckError, OSError) as exc:
            # Without it the data age is unknown: the snapshot counts as stale until the
            # next signed answer, and the persisted serial and version still bound replays.
            logger.error("ignoring the freshness record: %s; the snapshot is treated as "
                         "stale until the next sync", exc)
        if self._key is None:
            return
        snap_path = self._data_dir.file(SNAPSHOT_FILE)
        if snap_path.exists():
            try:
                self.snapshot = SnapshotState.load(snap_path, self._key)
            except (CreditCheckError, OSError, ValueError) as exc:
                logger.warning("ignoring the persisted snapshot %s: %s", snap_path, exc)
        cat_path = self._data_dir.file(CATALOG_FILE)
        if cat_path.exists():
            try:
                self.catalog = CatalogState.load(cat_path, self._key)
            except (CreditCheckError, OSError, ValueError) as exc:
                logger.warning("ignoring the persisted catalogue %s: %s", cat_path, exc)
        self._update_fresh_until()
        self._update_ready()

    def _update_ready(self) -> None:
        # Ready means a catalogue is present (DESIGN §9.8): without a snapshot, or with a
        # stale one, subjects are looked up online.
        if self.catalog is not None:
            self.ready.set()

    def _update_fresh_until(self) -> None:
        received = self.freshness.received_at
        if self.snapshot is None or received is None:
            self._set_fresh_until(float("-inf"))
        else:
            self._set_fresh_until(received + self.max_data_age)

    def _set_fresh_until(self, moment: float) -> None:
        self.fresh_until_at = (_NEVER if moment == float("-inf")
                               else dt.datetime.fromtimestamp(moment, CST))
        self.fresh_until = moment

    def usable_snapshot(self, now: float) -> SnapshotState | None:
        """The snapshot when its data is fresh at ``now`` (timer seconds), else None."""
        return self.snapshot if now < self.fresh_until else None

    def usable_snapshot_at(self, now: dt.datetime) -> SnapshotState | None:
        """:meth:`usable_snapshot` for an aware datetime (the decision path)."""
        return self.snapshot if now < self.fresh_until_at else None

    @property
    def service_key(self) -> Ed25519PublicKey | None:
        """The service key snapshots, catalogues and receipts are verified with."""
        return self._key

    def now(self) -> float:
        """The client's clock, in POSIX seconds (the timer the data age counts on)."""
        return self._timer()

    def data_age(self) -> float | None:
        """Seconds since the newest signed answer arrived (None before any)."""
        return self.freshness.age(self._timer())

    def wait_catalog(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a catalogue; give up early when the first
        sync failed and the breaker says the service is down. True when one is present."""
        deadline = time.monotonic() + timeout
        with self._settled:
            while self.catalog is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.failed_syncs and self._transport.breaker.is_open):
                    break
                self._settled.wait(remaining)
        return self.catalog is not None

    # -- one sync ----------------------------------------------------------------------

    def sync_once(self) -> bool:
        """Sync the catalogue and the snapshot once; True when both succeeded.

        Never raises a service error: failures are logged and kept in :attr:`last_error`
        while the last good copies keep serving.
        """
        try:
            with self._lock:
                return self._sync_locked()
        finally:
            self._note_staleness()
            with self._settled:
                self._settled.notify_all()

    def _note_staleness(self) -> None:
        # Said once when the data turns stale and once when it is fresh again.
        stale = self.snapshot is not None and self.usable_snapshot(self._timer()) is None
        if stale and CAUSE_STALE not in self._said:
            age = self.data_age()
            self._say_once(CAUSE_STALE, logging.WARNING,
                           "the credit list data is stale (newest signed answer %s ago, "
                           "max_data_age %.0f s): subjects are looked up online",
                           f"{age:.0f} s" if age is not None else "unknown",
                           self.max_data_age)
        elif not stale and CAUSE_STALE in self._said:
            self._said.discard(CAUSE_STALE)
            logger.info("the credit list data is fresh again")

    def _sync_locked(self) -> bool:
        errors = []
        try:
            key = self._service_key()
        except CreditCheckError as exc:
            errors.append(f"service key: {exc}")
        else:
            try:
                self._read_capabilities()
            except CreditCheckError as exc:
                errors.append(f"capabilities: {exc}")
        if not errors:
            for what, step in (("catalogue", self._sync_catalog),
                               ("snapshot", self._sync_snapshot)):
                try:
                    step(key)
                except CreditCheckError as exc:
                    errors.append(f"{what}: {exc}")
            if not errors and self.catalog_behind is not None:
                # The fresh snapshot names a newer catalogue: fetch it now, not at the
                # next interval.
                try:
                    self._sync_catalog(key, force=True)
                except CreditCheckError as exc:
                    errors.append(f"catalogue: {exc}")
        if errors:
            self.failed_syncs += 1
            self.last_error = "; ".join(errors)
            self.last_error_at = time.time()
            logger.warning("credit list sync failed, last good data keeps serving: %s",
                           self.last_error)
            return False
        self.last_error = None
        self.last_success_at = time.time()
        return True

    def _service_key(self) -> Ed25519PublicKey:
        if self._key is not None and self._key_confirmed:
            return self._key
        body = self._transport.request("GET", "/v1/keys").body
        try:
            published = next(k["public_key"] for k in body["keys"]
                             if k.get("alg", "Ed25519") == "Ed25519")
        except (TypeError, KeyError, StopIteration, AttributeError):
            raise InvalidServiceData("GET /v1/keys: no Ed25519 key in the answer") from None
        if not isinstance(published, str):
            raise InvalidServiceData("GET /v1/keys: the public key is not a string")
        key = self._data_dir.service_key(None, published)
        if key is None:  # pragma: no cover - service_key stores what it is given
            raise InvalidServiceData("GET /v1/keys: no usable key")
        self._key, self._key_confirmed = key, True
        return key

    def _read_capabilities(self) -> None:
        try:
            resp = self._transport.request("GET", "/v1/capabilities", ok=(200, 404))
        except ServiceUnavailable:
            raise
        except (ServiceRejected, InvalidServiceData) as exc:
            self._say_once("capabilities", logging.WARNING,
                           "GET /v1/capabilities failed (%s); syncing as protocol v1", exc)
            return
        if resp.status == 404 or not isinstance(resp.body, dict):
            self.capabilities = None
            self._say_once("v1", logging.WARNING,
                           "the list service speaks protocol v1 (no /v1/capabilities): it "
                           "signs no issued_at, so a replayed answer cannot be told from a "
                           "fresh one; its data counts as fresh from each successful sync")
            return
        self.capabilities = resp.body

    def _sync_catalog(self, key: Ed25519PublicKey, force: bool = False) -> None:
        current = self.catalog
        headers = ({"If-None-Match": current.etag}
                   if current is not None and current.etag and not force else None)
        resp = self._transport.request("GET", "/v1/catalog", headers=headers, ok=(200, 304))
        if resp.status == 304 and current is not None:
            return
        state = CatalogState.from_response(resp.body, resp.headers.get("ETag"), key)
        if not self._catalog_acceptable(state, current):
            return
        self._persist(lambda: state.save(self._data_dir.file(CATALOG_FILE)), "catalogue")
        self.catalog = state
        if state.signed_v2:
            assert state.epoch is not None
            self._set_freshness(dataclasses.replace(
                self.freshness, signed=True, epoch=max(state.epoch, self.freshness.epoch or 0),
                catalog_serial=state.serial))
        if self.catalog_behind is not None and (state.serial or 0) >= self.catalog_behind:
            self.catalog_behind = None
        self._update_ready()

    def _catalog_acceptable(self, state: CatalogState, current: CatalogState | None) -> bool:
        order = catalog_order(state, current, self.freshness)
        if order is CatalogOrder.DOWNGRADE:
            raise InvalidServiceData(
                "an answer without signature_v2 from a service that signed its catalogue "
                "serial before; refused (a replayed or downgraded answer)")
        self.upgrade_required = state.upgrade_required or order is CatalogOrder.TOO_NEW
        if self.upgrade_required:
            self._say_once(CAUSE_UPGRADE, logging.ERROR,
                           "the service's current catalogue needs a newer credit-check "
                           "(catalogue schema above %d); keeping the newest catalogue this "
                           "version understands: upgrade credit-check", CATALOG_SCHEMA)
        else:
            self._said.discard(CAUSE_UPGRADE)
        if order is CatalogOrder.LOWER_EPOCH:
            self._refuse(f"catalogue serial {state.serial} of epoch {state.epoch}: lower "
                         f"than the epoch {self.freshness.epoch} held")
        elif order is CatalogOrder.OLDER:
            self._refuse(f"catalogue serial {state.serial} is older than the serial "
                         f"{held_serial(current, self.freshness)} held")
        elif order is CatalogOrder.HIGHER_EPOCH:
            logger.warning("the list service's epoch rose from %s to %s (a restored "
                           "database): resyncing in full", self.freshness.epoch, state.epoch)
        return order in (CatalogOrder.NEWER, CatalogOrder.HIGHER_EPOCH)

    def _sync_snapshot(self, key: Ed25519PublicKey) -> None:
        current = self.snapshot
        require = self.freshness.signed
        if current is not None:
            resp = self._transport.request(
                "GET", "/v1/snapshot", params={"since": str(current.version)}, ok=(200, 410)
            )
            if resp.status == 200:
                try:
                    self._install(current.apply(_as_dict(resp.body), key, require_v2=require))
                    return
                except SnapshotRollback as exc:
                    self._refuse(str(exc))
                    return
                except EpochRaised as exc:
                    logger.warning("%s: resyncing in full", exc)
                    current = None
                except SnapshotChecksumMismatch as exc:
                    logger.warning("snapshot delta did not add up (%s); resyncing in full", exc)
            else:
                logger.info("snapshot delta since %s is gone (410); resyncing in full",
                            current.version)
        resp = self._transport.request("GET", "/v1/snapshot")
        full = SnapshotState.empty().apply(_as_dict(resp.body), key, require_v2=require)
        if current is not None and (full.epoch is None or full.epoch == current.epoch) \
                and full.version < current.version:
            self._refuse(f"snapshot: full version {full.version} is older than the version "
                         f"{current.version} held")
            return
        if full.epoch is not None and self.freshness.epoch is not None \
                and full.epoch < self.freshness.epoch:
            self._refuse(f"snapshot: epoch {full.epoch} is lower than the epoch "
                         f"{self.freshness.epoch} held")
            return
        self._install(full)

    def _install(self, state: SnapshotState) -> None:
        self._persist(lambda: state.save(self._data_dir.file(SNAPSHOT_FILE)), "snapshot")
        now = self._timer()
        signed = state.signed
        if signed is None:
            # Protocol v1: unproven freshness, counted from this sync (see the class doc).
            fresh = dataclasses.replace(self.freshness, received_at=now)
        else:
            fresh, refreshed = self.freshness.with_issued(parse_issued_at(signed.issued_at), now)
            fresh = dataclasses.replace(fresh, epoch=max(signed.epoch, fresh.epoch or 0))
            if not refreshed:
                self.replayed += 1
                logger.warning("snapshot answer issued at %s is not newer than one already "
                               "seen: the data age is not refreshed (a frozen or replayed "
                               "answer)", signed.issued_at)
            held = self.catalog.serial if self.catalog is not None else None
            self.catalog_behind = (signed.catalog_serial
                                   if held is not None and signed.catalog_serial > held else None)
        self.snapshot = state
        self._set_freshness(fresh)

    def _set_freshness(self, fresh: Freshness) -> None:
        if fresh != self.freshness:
            self._persist(lambda: fresh.save(self._data_dir.file(FRESHNESS_FILE)),
                          "freshness record")
        self.freshness = fresh
        self._update_fresh_until()

    def _refuse(self, what: str) -> None:
        # A lagging instance is normal; a replay is not; either way the answer is ignored.
        self.refused += 1
        logger.warning("refused %s: a lagging instance or a replayed answer; keeping what is "
                       "held", what)

    def _say_once(self, cause: str, level: int, msg: str, *args: Any) -> None:
        if cause not in self._said:
            self._said.add(cause)
            logger.log(level, msg, *args)

    @staticmethod
    def _persist(save: Callable[[], None], what: str) -> None:
        # A full disk must not stop a verified copy from serving in memory.
        try:
            save()
        except (OSError, CreditCheckError) as exc:
            logger.warning("cannot persist the %s: %s", what, exc)

    # -- the thread --------------------------------------------------------------------

    def start(self) -> None:
        """Start the daemon sync thread (again, in a forked child)."""
        self._poller.start()

    def wake(self) -> None:
        """Make the thread sync now."""
        self._poller.wake()

    def after_fork_in_child(self) -> None:
        """Reset what a fork leaves broken: locks and the (now absent) thread."""
        self._lock = threading.Lock()
        self._settled = threading.Condition()
        self._poller.after_fork_in_child()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it."""
        self._poller.stop(timeout)

    @property
    def thread_alive(self) -> bool:
        return self._poller.alive


def _as_dict(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidServiceData("GET /v1/snapshot: the answer is not a JSON object")
    return body

