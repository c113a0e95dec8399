"""Background sync of the signed snapshot of subject-id prefixes and of the measure
catalogue: a daemon thread polling with jitter, persisting each good copy to the data
directory, and keeping the last good copy serving whatever goes wrong.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from credit_check._catalog_state import CatalogState
from credit_check._datadir import DataDir
from credit_check._exceptions import CreditCheckError, InvalidServiceData
from credit_check._snapshot import SnapshotChecksumMismatch, SnapshotState
from credit_check._transport import Transport

logger = logging.getLogger("credit_check.sync")

SNAPSHOT_FILE = "snapshot.bin"
CATALOG_FILE = "catalog.json"
# After a failure, retry sooner than the interval, doubling up to it.
FIRST_RETRY = 1.0


class Syncer:
    """Keeps a snapshot and a catalogue current; the attributes are read without a lock
    (each is replaced whole by one assignment, never mutated).

    Args:
        transport: the checker's transport.
        data_dir: where the snapshot and catalogue are persisted.
        pinned_key: ``CREDIT_CHECK_SERVICE_PUBLIC_KEY``; without it the key is trusted on
            first use (``GET /v1/keys``) and stored.
        interval: seconds between syncs (each jittered by ±20 %).
        on_success: called in the sync thread after each fully successful sync.

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
        on_success: Callable[[], None] = lambda: None,
    ) -> None:
        self._transport = transport
        self._data_dir = data_dir
        self._pinned = pinned_key
        self._interval = interval
        self._on_success = on_success
        self._key: Ed25519PublicKey | None = data_dir.service_key(pinned_key)
        self._key_confirmed = bool(pinned_key)
        self.snapshot: SnapshotState | None = None
        self.catalog: CatalogState | None = None
        self.snapshot_at: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- persisted state ---------------------------------------------------------------

    def load(self) -> None:
        """Load the persisted snapshot and catalogue, so a restarted process serves at once.

        A missing, damaged or unverifiable file is logged and skipped.
        """
        if self._key is None:
            return
        snap_path = self._data_dir.file(SNAPSHOT_FILE)
        if snap_path.exists():
            try:
                self.snapshot = SnapshotState.load(snap_path, self._key)
                self.snapshot_at = snap_path.stat().st_mtime
            except (CreditCheckError, OSError, ValueError) as exc:
                logger.warning("ignoring the persisted snapshot %s: %s", snap_path, exc)
        cat_path = self._data_dir.file(CATALOG_FILE)
        if cat_path.exists():
            try:
                self.catalog = CatalogState.load(cat_path, self._key)
            except (CreditCheckError, OSError, ValueError) as exc:
                logger.warning("ignoring the persisted catalogue %s: %s", cat_path, exc)
        self._update_ready()

    def _update_ready(self) -> None:
        if self.snapshot is not None and self.catalog is not None:
            self.ready.set()

    # -- one sync ----------------------------------------------------------------------

    def sync_once(self) -> bool:
        """Sync the catalogue and the snapshot once; True when both succeeded.

        Never raises a service error: failures are logged and kept in :attr:`last_error`
        while the last good copies keep serving.
        """
        with self._lock:
            errors = []
            try:
                key = self._service_key()
            except CreditCheckError as exc:
                errors.append(f"service key: {exc}")
            else:
                for what, step in (("catalogue", self._sync_catalog),
                                   ("snapshot", self._sync_snapshot)):
                    try:
                        step(key)
                    except CreditCheckError as exc:
                        errors.append(f"{what}: {exc}")
            if errors:
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

    def _sync_catalog(self, key: Ed25519PublicKey) -> None:
        current = self.catalog
        headers = {"If-None-Match": current.etag} if current is not None and current.etag else None
        resp = self._transport.request("GET", "/v1/catalog", headers=headers, ok=(200, 304))
        if resp.status == 304 and current is not None:
            return
        state = CatalogState.from_response(resp.body, resp.headers.get("ETag"), key)
        self._persist(lambda: state.save(self._data_dir.file(CATALOG_FILE)), "catalogue")
        self.catalog = state
        self._update_ready()

    def _sync_snapshot(self, key: Ed25519PublicKey) -> None:
        current = self.snapshot
        if current is not None:
            resp = self._transport.request(
                "GET", "/v1/snapshot", params={"since": str(current.version)}, ok=(200, 410)
            )
            if resp.status == 200:
                try:
                    self._install(current.apply(_as_dict(resp.body), key))
                    return
                except SnapshotChecksumMismatch as exc:
                    logger.warning("snapshot delta did not add up (%s); resyncing in full", exc)
            else:
                logger.info("snapshot delta since %s is gone (410); resyncing in full",
                            current.version)
        resp = self._transport.request("GET", "/v1/snapshot")
        self._install(SnapshotState.empty().apply(_as_dict(resp.body), key))

    def _install(self, state: SnapshotState) -> None:
        self._persist(lambda: state.save(self._data_dir.file(SNAPSHOT_FILE)), "snapshot")
        self.snapshot = state
        self.snapshot_at = time.time()
        self._update_ready()

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
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="credit-check-sync", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Make the thread sync now."""
        self._wake.set()

    def _run(self) -> None:
        retry = FIRST_RETRY
        while not self._stop.is_set():
            ok = self.sync_once()
            if ok:
                retry = FIRST_RETRY
                try:
                    self._on_success()
                except (CreditCheckError, OSError) as exc:
                    logger.warning("post-sync work failed: %s", exc)
                delay = self._interval * random.uniform(0.8, 1.2)
            else:
                delay = min(self._interval, retry) * random.uniform(0.8, 1.2)
                retry *= 2
            self._wake.wait(delay)
            self._wake.clear()

    def after_fork_in_child(self) -> None:
        """Reset what a fork leaves broken: locks and the (now absent) thread."""
        self._lock = threading.Lock()
        self._thread = None
        self._stop = threading.Event()
        self._wake = threading.Event()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() \
                and thread.ident is not None and thread.is_alive():
            thread.join(timeout)
        self._thread = None

    @property
    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def _as_dict(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidServiceData("GET /v1/snapshot: the answer is not a JSON object")
    return body

