"""One process's copy of the live prefix set: a reference count per prefix (several
entries may put the same prefix in the set) at one version, and the signed full set of
that version, built once per version. The deltas between versions live in the database.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from array import array
from collections import Counter
from collections.abc import Iterable

from credit_check._crypto import Signer, snapshot_message
from credit_check._server._store import SnapshotState

# The prefix set is never 4 GiB: deltas and contributions are packed as arrays of "I".
_ARRAY = "I"


def pack(prefixes: Iterable[int]) -> bytes:
    """Prefixes (any order, repeats kept) as 4-byte big-endian integers."""
    values = array(_ARRAY, prefixes)
    if sys.byteorder == "little":
        values.byteswap()
    return values.tobytes()


def unpack(data: bytes | None) -> array[int]:
    values = array(_ARRAY)
    if data:
        values.frombytes(bytes(data))
        if sys.byteorder == "little":
            values.byteswap()
    return values


class PrefixIndex:
    """Reference-counted prefixes at one version; thread-safe."""

    def __init__(self, signer: Signer) -> None:
        self._signer = signer
        self._counts: Counter[int] = Counter()
        self.lock = threading.RLock()
        self.version = 0
        self._state: SnapshotState | None = None

    def reset(self, prefixes: Iterable[int], version: int) -> None:
        """Load the whole set as ``version``."""
        with self.lock:
            self._counts = Counter(prefixes)
            self.version = version
            self._state = None

    def apply(self, minus: Iterable[int], plus: Iterable[int], version: int) -> None:
        """Apply the reference-count changes that made ``version``."""
        with self.lock:
            counts = self._counts
            for p in minus:
                counts[p] -= 1
                if counts[p] <= 0:
                    del counts[p]
            for p in plus:
                counts[p] += 1
            self.version = version
            self._state = None

    def preview(self, minus: Iterable[int], plus: Iterable[int]
                ) -> tuple[set[int], set[int], set[int]]:
        """What applying the changes would do: (added, removed, prefixes in the set after
        among those touched), without applying them."""
        with self.lock:
            counts = self._counts
            touched: Counter[int] = Counter()
            for p in minus:
                touched[p] -= 1
            for p in plus:
                touched[p] += 1
            added: set[int] = set()
            removed: set[int] = set()
            present: set[int] = set()
            for p, change in touched.items():
                before = counts.get(p, 0)
                after = before + change
                if after > 0:
                    present.add(p)
                    if before <= 0:
                        added.add(p)
                elif before > 0:
                    removed.add(p)
            return added, removed, present

    def counts(self) -> Counter[int]:
        """A copy of the reference counts (for checks)."""
        with self.lock:
            return Counter(self._counts)

    def __len__(self) -> int:
        return len(self._counts)

    def __contains__(self, prefix: object) -> bool:
        return prefix in self._counts

    def state(self) -> SnapshotState:
        """The full set at the current version, with its v1 signature (cached)."""
        with self.lock:
            if self._state is not None and self._state.version == self.version:
                return self._state
            packed = pack(sorted(self._counts))
            checksum = hashlib.sha256(packed).hexdigest()
            self._state = SnapshotState(self.version, packed, checksum, self._signer.sign(
                snapshot_message(self.version, checksum)))
            return self._state
