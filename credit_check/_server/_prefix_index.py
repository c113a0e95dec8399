"""The sandbox's live prefix set: reference counts per prefix, a version per change, and
the deltas of the last versions, so a change costs what it touches, not the whole set.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from array import array
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass

from credit_check._crypto import Signer, b64e, pack_prefixes, snapshot_message

KEPT_DELTAS = 5000


@dataclass(frozen=True, slots=True)
class _Full:
    version: int
    packed: bytes
    checksum: str
    signature: str


class SnapshotGone(LookupError):
    """A delta from this version is no longer (or never was) available."""


class PrefixIndex:
    """Reference-counted prefixes with versioned deltas; thread-safe."""

    def __init__(self, signer: Signer, version: int = 1) -> None:
        self._signer = signer
        self._counts: Counter[int] = Counter()
        self._lock = threading.Lock()
        self.version = version
        # (version, added, removed): the change that produced ``version`` from version - 1
        self._deltas: deque[tuple[int, frozenset[int], frozenset[int]]] = deque(maxlen=KEPT_DELTAS)
        self._full: _Full | None = None

    def reset(self, prefixes: Iterable[int], version: int) -> None:
        """Load the whole set (at start-up or after a catalogue change); older deltas go."""
        with self._lock:
            self._counts = Counter(prefixes)
            self.version = version
            self._deltas.clear()
            self._full = None

    def change(self, minus: Iterable[int], plus: Iterable[int], version: int) -> None:
        """Apply reference-count changes made by one admin call, as ``version``."""
        with self._lock:
            counts = self._counts
            added: set[int] = set()
            removed: set[int] = set()
            for p in minus:
                counts[p] -= 1
                if counts[p] <= 0:
                    del counts[p]
                    if p in added:
                        added.discard(p)
                    else:
                        removed.add(p)
            for p in plus:
                if counts[p] == 0:
                    if p in removed:
                        removed.discard(p)
                    else:
                        added.add(p)
                counts[p] += 1
            self._deltas.append((version, frozenset(added), frozenset(removed)))
            self.version = version
            self._full = None

    def __len__(self) -> int:
        return len(self._counts)

    def full(self) -> dict[str, object]:
        """The full set at the current version, signed (cached until the next change)."""
        state = self._current()
        return {"version": state.version, "full": True, "prefixes": b64e(state.packed),
                "checksum": state.checksum, "signature": state.signature,
                "count": len(state.packed) // 4}

    def delta(self, since: int) -> dict[str, object]:
        """The change from ``since`` to the current version, signed.

        Raises:
            SnapshotGone: ``since`` is older than the kept deltas, or unknown.
        """
        with self._lock:
            current = self.version
            if since > current or since < 0:
                raise SnapshotGone(f"version {since} is unknown; the current version is {current}")
            steps = [d for d in self._deltas if d[0] > since]
            if len(steps) != current - since:
                raise SnapshotGone(
                    f"no delta from version {since} is kept (the oldest kept starts at "
                    f"{self._deltas[0][0] - 1 if self._deltas else current}); fetch the full snapshot"
                )
            # the state of the same version as the steps, not of a change made since
            state = self._current_locked()
        added: set[int] = set()
        removed: set[int] = set()
        for _, plus, minus in steps:
            for p in minus:
                if p in added:
                    added.discard(p)
                else:
                    removed.add(p)
            for p in plus:
                if p in removed:
                    removed.discard(p)
                else:
                    added.add(p)
        return {"version": state.version, "since": since, "full": False,
                "added": b64e(pack_prefixes(added)), "removed": b64e(pack_prefixes(removed)),
                "checksum": state.checksum, "signature": state.signature,
                "count": len(state.packed) // 4}

    def _current(self) -> _Full:
        with self._lock:
            return self._current_locked()

    def _current_locked(self) -> _Full:
        if self._full is not None and self._full.version == self.version:
            return self._full
        values = array("I", sorted(self._counts))
        if sys.byteorder == "little":
            values.byteswap()
        packed = values.tobytes()
        checksum = hashlib.sha256(packed).hexdigest()
        self._full = _Full(self.version, packed, checksum,
                           self._signer.sign(snapshot_message(self.version, checksum)))
        return self._full
