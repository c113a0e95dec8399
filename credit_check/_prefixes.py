"""An exact, compact set of 32-bit subject-id prefixes (DESIGN §7).

65,536 buckets by the top 16 bits (an offsets array) and the low 16 bits of every prefix in
one sorted ``array('H')``: about 2 bytes per listed subject, and a lookup bisects one small
bucket. Sets are immutable: a delta builds a new set, so readers never need a lock.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator

from credit_check._exceptions import InvalidServiceData

BUCKETS = 1 << 16
_LITTLE = sys.byteorder == "little"


def _big_endian_u16(data: bytes | bytearray) -> array[int]:
    values = array("H")
    values.frombytes(data)
    if _LITTLE:
        values.byteswap()
    return values


def _to_big_endian(values: array[int]) -> bytes:
    copy = array("H", values)
    if _LITTLE:
        copy.byteswap()
    return copy.tobytes()


def _zeros(typecode: str, n: int) -> array[int]:
    values = array(typecode)
    values.frombytes(bytes(values.itemsize * n))
    return values


class PrefixSet:
    """An immutable set of 32-bit prefixes in about 2 bytes per member."""

    __slots__ = ("_lows", "_offsets")

    def __init__(self, offsets: array[int], lows: array[int]) -> None:
        self._offsets = offsets
        self._lows = lows

    @classmethod
    def empty(cls) -> PrefixSet:
        return cls(_zeros("I", BUCKETS + 1), array("H"))

    @classmethod
    def from_packed(cls, data: bytes) -> PrefixSet:
        """Build from the wire form: sorted 4-byte big-endian prefixes, concatenated.

        Raises:
            InvalidServiceData: the length is not a multiple of 4.
        """
        if len(data) % 4:
            raise InvalidServiceData(f"prefix data of {len(data)} bytes is not a multiple of 4")
        n = len(data) // 4
        # De-interleave with extended slices: C-speed, no per-element Python work.
        high, low = bytearray(2 * n), bytearray(2 * n)
        high[0::2], high[1::2] = data[0::4], data[1::4]
        low[0::2], low[1::2] = data[2::4], data[3::4]
        his = _big_endian_u16(high)
        offsets = array("I", (bisect_left(his, k) for k in range(BUCKETS)))
        offsets.append(n)
        return cls(offsets, _big_endian_u16(low))

    @classmethod
    def from_iterable(cls, prefixes: Iterable[int]) -> PrefixSet:
        values = sorted(set(prefixes))
        return cls.from_packed(b"".join(p.to_bytes(4, "big") for p in values))

    def __contains__(self, prefix: object) -> bool:
        if not isinstance(prefix, int):
            return False
        offsets = self._offsets
        hi = prefix >> 16
        start, end = offsets[hi], offsets[hi + 1]
        if start == end:
            return False
        lo = prefix & 0xFFFF
        i = bisect_left(self._lows, lo, start, end)
        return i < end and self._lows[i] == lo

    def __len__(self) -> int:
        return len(self._lows)

    def __iter__(self) -> Iterator[int]:
        offsets, lows = self._offsets, self._lows
        for hi in range(BUCKETS):
            base = hi << 16
            for i in range(offsets[hi], offsets[hi + 1]):
                yield base | lows[i]

    @property
    def nbytes(self) -> int:
        """Bytes held by the two arrays (the set's whole payload)."""
        return self._offsets.itemsize * len(self._offsets) + self._lows.itemsize * len(self._lows)

    def to_packed(self) -> bytes:
        """The wire form: sorted 4-byte big-endian prefixes, concatenated."""
        return self._interleave().tobytes()

    def _interleave(self) -> array[int]:
        offsets = self._offsets
        high = array("H")
        high.frombytes(b"".join(
            hi.to_bytes(2, "big") * (offsets[hi + 1] - offsets[hi]) for hi in range(BUCKETS)
        ))
        low = self._lows[:]  # a slice copies with memcpy; array(code, array) goes item by item
        if _LITTLE:
            low.byteswap()
        out = high + low  # any array of the right length; cheaper than zero-filling
        out[0::2] = high
        out[1::2] = low
        return out

    def checksum(self) -> str:
        """SHA-256 (hex) of :meth:`to_packed`, hashed straight from the buffer."""
        return hashlib.sha256(memoryview(self._interleave())).hexdigest()

    def apply_delta(self, added: Iterable[int], removed: Iterable[int]) -> PrefixSet:
        """A new set with ``added`` inserted and ``removed`` taken out.

        Only changed buckets are rebuilt; the output array is sized once and filled with
        slice copies, so a 10 k-change delta on 10 M members stays well under a second's
        worth of Python work.
        """
        changes: dict[int, tuple[list[int], list[int]]] = {}
        for p in added:
            changes.setdefault(p >> 16, ([], []))[0].append(p & 0xFFFF)
        for p in removed:
            changes.setdefault(p >> 16, ([], []))[1].append(p & 0xFFFF)
        if not changes:
            return self
        old_off, old_lows = self._offsets, self._lows
        buckets: list[tuple[int, array[int]]] = []
        growth = 0
        for hi in sorted(changes):
            start, end = old_off[hi], old_off[hi + 1]
            bucket: list[int] = old_lows[start:end].tolist()
            plus, minus = changes[hi]
            for lo in plus:
                i = bisect_left(bucket, lo)
                if i == len(bucket) or bucket[i] != lo:
                    bucket.insert(i, lo)
            for lo in minus:
                i = bisect_left(bucket, lo)
                if i < len(bucket) and bucket[i] == lo:
                    del bucket[i]
            buckets.append((hi, array("H", bucket)))
            growth += len(bucket) - (end - start)
        lows = _zeros("H", len(old_lows) + growth)
        offsets = old_off[:]
        src = dst = 0
        shift = 0
        for idx, (hi, new) in enumerate(buckets):
            start, end = old_off[hi], old_off[hi + 1]
            span = start - src
            lows[dst : dst + span] = old_lows[src:start]
            dst += span
            lows[dst : dst + len(new)] = new
            dst += len(new)
            src = end
            shift += len(new) - (end - start)
            stop = buckets[idx + 1][0] if idx + 1 < len(buckets) else BUCKETS
            for k in range(hi + 1, stop + 1):
                offsets[k] = old_off[k] + shift
        lows[dst:] = old_lows[src:]
        return PrefixSet(offsets, lows)

    def save_arrays(self) -> tuple[bytes, bytes]:
        """The raw arrays, for the on-disk format (native byte order)."""
        return self._offsets.tobytes(), self._lows.tobytes()

    @classmethod
    def from_arrays(cls, offsets: bytes, lows: bytes) -> PrefixSet:
        """Rebuild from :meth:`save_arrays`; the caller verifies the checksum afterwards.

        Raises:
            InvalidServiceData: the arrays are inconsistent.
        """
        off, low = array("I"), array("H")
        try:
            off.frombytes(offsets)
            low.frombytes(lows)
        except ValueError as exc:
            raise InvalidServiceData("snapshot arrays have a wrong length") from exc
        if len(off) != BUCKETS + 1 or off[0] != 0 or off[-1] != len(low):
            raise InvalidServiceData("snapshot offsets are inconsistent with the prefixes")
        return cls(off, low)
