"""The lookup cache: fresh answers with separate TTLs for listed and not-listed subjects,
and a longer-lived store of last answers used only when the service fails (stale-if-error).

Entries are cached as the service sent them; the rulebook judges their periods against
the clock on every check, so a cached entry that expires stops applying at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cachetools import TTLCache

from credit_check._models import SubjectLookup


class LookupCache:
    """Thread-safe, bounded caches of :class:`SubjectLookup` answers by normalised id.

    Args:
        listed_ttl: seconds a fresh answer with entries is used (short: lists change).
        not_listed_ttl: seconds a fresh answer without entries is used.
        max_stale: seconds a last answer may still be used while the service fails
            (0 turns stale-if-error off).
        maxsize: the most subjects each store holds.
        timer: monotonic seconds; tests pass one derived from their clock.
    """

    def __init__(
        self,
        *,
        listed_ttl: float = 60.0,
        not_listed_ttl: float = 300.0,
        max_stale: float = 6 * 3600.0,
        maxsize: int = 50_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._listed: TTLCache[str, SubjectLookup] = TTLCache(maxsize, listed_ttl, timer)
        self._not_listed: TTLCache[str, SubjectLookup] = TTLCache(maxsize, not_listed_ttl, timer)
        self._stale: TTLCache[str, SubjectLookup] | None = (
            TTLCache(maxsize, max_stale, timer) if max_stale > 0 else None
        )
        self._lock = threading.Lock()

    def get(self, subject_id: str) -> SubjectLookup | None:
        """The fresh answer for ``subject_id``, if any."""
        with self._lock:
            found = self._listed.get(subject_id)
            return found if found is not None else self._not_listed.get(subject_id)

    def get_stale(self, subject_id: str) -> SubjectLookup | None:
        """The last answer within ``max_stale``, for use only when the service fails."""
        with self._lock:
            found = self._listed.get(subject_id) or self._not_listed.get(subject_id)
            if found is None and self._stale is not None:
                found = self._stale.get(subject_id)
            return found

    def put(self, subject_id: str, answer: SubjectLookup) -> None:
        """Remember a fresh answer (a prefix collision is cached as a not-listed answer)."""
        with self._lock:
            # An answer moves between stores when the subject is listed or delisted.
            if answer.entries:
                self._not_listed.pop(subject_id, None)
                self._listed[subject_id] = answer
            else:
                self._listed.pop(subject_id, None)
                self._not_listed[subject_id] = answer
            if self._stale is not None:
                self._stale[subject_id] = answer

    def clear(self) -> None:
        """Forget every answer."""
        with self._lock:
            self._listed.clear()
            self._not_listed.clear()
            if self._stale is not None:
                self._stale.clear()

    def reset_lock(self) -> None:
        """A fresh lock for a forked child (the parent's may have been held at fork time)."""
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._listed) + len(self._not_listed)
