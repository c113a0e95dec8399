"""The background sync thread: runs one sync at an interval with jitter, sooner after a
failure, at once when woken; a daemon, restartable in a forked child."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from credit_check._exceptions import CreditCheckError

logger = logging.getLogger("credit_check.sync")

# After a failure, retry sooner than the interval, doubling up to it.
FIRST_RETRY = 1.0


class Poller:
    """Calls ``sync`` in a daemon thread every ``interval`` seconds (±20 % jitter), after
    a failure sooner (from :data:`FIRST_RETRY`, doubling up to the interval), and calls
    ``on_success`` after each sync that returned True."""

    def __init__(self, sync: Callable[[], bool], *, interval: float,
                 on_success: Callable[[], None]) -> None:
        self._sync = sync
        self._interval = interval
        self._on_success = on_success
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()

    def start(self) -> None:
        """Start the thread (again, in a forked child)."""
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
            if self._sync():
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
        """Forget the parent's thread (it does not exist here) and its events."""
        self._thread = None
        self._stop = threading.Event()
        self._wake = threading.Event()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for it."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() \
                and thread.ident is not None and thread.is_alive():
            thread.join(timeout)
        self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
