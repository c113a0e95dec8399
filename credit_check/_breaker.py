"""The circuit breaker of rule 9: after a few consecutive failed attempts to reach the list
service, calls fail at once (no network wait) until one probe at a time gets through.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable

from credit_check._exceptions import ServiceUnavailable


class CircuitOpen(ServiceUnavailable):
    """A call not sent because the breaker is open (the service is known to be down)."""


class BreakerState(enum.StrEnum):
    """Where the breaker stands: calls go through, fail at once, or one probe is out."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failed attempts and short-circuits calls while the service is down.

    Each *attempt* counts (a call retried twice that keeps failing counts three), so one
    failed sync of a service that refuses connections opens the breaker, and one timed-out
    attempt opens it at once. Any answer from the service closes it again, a 4xx
    included: the service is up.

    While open, :meth:`allow` refuses until a cooldown has passed; then it lets exactly one
    caller through as the probe (half-open) and refuses the others until that probe ends.
    A failed probe opens the breaker again with the cooldown doubled, up to ``max_cooldown``.

    Args:
        threshold: consecutive failed attempts that open the breaker.
        cooldown: seconds before the first probe.
        max_cooldown: the cap on the growing cooldown.
        timer: monotonic seconds (tests pass their own).
    """

    def __init__(self, *, threshold: int = 3, cooldown: float = 1.0, max_cooldown: float = 30.0,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self._base = cooldown
        self._max = max_cooldown
        self._timer = timer
        self._lock = threading.Lock()
        self._failures = 0
        self._state = BreakerState.CLOSED
        self._cooldown = cooldown
        self._retry_at = 0.0
        self._probe: int | None = None  # the thread id holding the probe
        self.opened_count = 0  # how often it opened (a metric)

    @property
    def state(self) -> BreakerState:
        """The current state (OPEN while the cooldown runs, HALF_OPEN while a probe is out)."""
        return self._state

    @property
    def is_open(self) -> bool:
        """Whether calls are short-circuited now (open, or half-open with a probe out)."""
        return self._state is not BreakerState.CLOSED

    @property
    def retry_in(self) -> float:
        """Seconds until the next probe may go out (0 when closed)."""
        if self._state is BreakerState.CLOSED:
            return 0.0
        return max(0.0, self._retry_at - self._timer())

    def allow(self) -> bool:
        """Whether the calling thread may make one network attempt now."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            me = threading.get_ident()
            if self._probe == me:
                return True  # the probe's own retries are refused by a failure first
            if self._probe is None and self._timer() >= self._retry_at:
                self._state, self._probe = BreakerState.HALF_OPEN, me
                return True
            return False

    def success(self) -> bool:
        """The service answered: close the breaker; True when this closed it."""
        with self._lock:
            closed = self._state is not BreakerState.CLOSED
            self._failures = 0
            self._state = BreakerState.CLOSED
            self._cooldown = self._base
            self._probe = None
            return closed

    def failure(self, *, timed_out: bool = False) -> bool:
        """An attempt failed (unreachable, timed out, 5xx/429); True when this opened it.

        A timed-out attempt opens the breaker at once: it already cost its caller the
        whole timeout, and every caller after it would pay the same.
        """
        with self._lock:
            self._failures += self.threshold if timed_out else 1
            probing = self._probe == threading.get_ident()
            if not probing and (self._state is BreakerState.HALF_OPEN
                                or (self._state is BreakerState.CLOSED
                                    and self._failures < self.threshold)):
                # Below the threshold, or a late failure while another thread probes.
                return False
            if probing:
                self._cooldown = min(self._max, self._cooldown * 2)
            opened = self._state is BreakerState.CLOSED
            self._state, self._probe = BreakerState.OPEN, None
            self._retry_at = self._timer() + self._cooldown
            if opened:
                self.opened_count += 1
            return opened

    def expire_cooldown(self) -> None:
        """Let the next call probe now (an explicit sync asks to try the service again)."""
        with self._lock:
            self._retry_at = min(self._retry_at, self._timer())

    def release(self) -> None:
        """The probe ended without a verdict (e.g. an error of ours): let another probe."""
        with self._lock:
            if self._probe == threading.get_ident():
                self._probe = None
                self._state = BreakerState.OPEN

    def reset(self) -> None:
        """A fresh lock for a forked child; the state carries over."""
        self._lock = threading.Lock()
        self._probe = None
        if self._state is BreakerState.HALF_OPEN:
            self._state = BreakerState.OPEN
