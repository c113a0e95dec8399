"""An exact, compact set of 32-bit subject-id prefixes (DESIGN §7).

65,536 buckets by the top 16 bits (an offsets array); the low 16 bits of every prefix are
kept as two byte planes, its third and its fourth byte, sorted within each bucket. That is
about 2 bytes per listed subject, a lookup bisects one small bucket, and the wire form the
checksum is taken over is rebuilt 256 buckets at a time with strided byte copies (one
``array('H')`` of low halves would first need a byte swap and a 16-bit de-interleave, which
cost nearly as much as the hash). Sets are immutable: a delta builds a new set, so readers
never need a lock."""

from __future__ import annotations

import hashlib
import struct
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import accumulate, chain, repeat
from operator import add, gt, mul, sub

from credit_check._exceptions import InvalidServiceData

BUCKETS = 1 << 16
_LITTLE = sys.byteorder == "little"
_BYTE = tuple(bytes((b,)) for b in range(256))


def unpack(data: bytes) -> list[int]:
    """Prefixes from the wire form (4-byte big-endian integers, concatenated).

    Raises:
        InvalidServiceData: the length is not a multiple of 4.
    """
    if len(data) % 4:
        raise InvalidServiceData(f"prefix data of {len(data)} bytes is not a multiple of 4")
    values = array("I")
    values.frombytes(data)
    if _LITTLE:
        values.byteswap()
    return values.tolist()


def _splice(plane: bytes, runs: list[slice], inserts: list[bytes]) -> bytes:
    """Runs of ``plane`` (zero-copy views), each followed by its insert, joined in one copy."""
    pieces = map(memoryview(plane).__getitem__, runs)
    return b"".join(chain.from_iterable(zip(pieces, inserts, strict=True)))


class PrefixSet:
    """An immutable set of 32-bit prefixes in about 2 bytes per member."""

    __slots__ = ("_fourth", "_offsets", "_third")

    def __init__(self, offsets: array[int], third: bytes, fourth: bytes) -> None:
        self._offsets = offsets
        self._third = third
        self._fourth = fourth

    @classmethod
    def empty(cls) -> PrefixSet:
        offsets = array("I")
        offsets.frombytes(bytes(offsets.itemsize * (BUCKETS + 1)))
        return cls(offsets, b"", b"")

    @classmethod
    def from_packed(cls, data: bytes) -> PrefixSet:
        """Build from the wire form: sorted 4-byte big-endian prefixes, concatenated.

        The input is taken as it is: the caller compares :meth:`checksum` with a signed one.

        Raises:
            InvalidServiceData: the length is not a multiple of 4.
        """
        if len(data) % 4:
            raise InvalidServiceData(f"prefix data of {len(data)} bytes is not a multiple of 4")
        n = len(data) // 4
        # De-interleave with extended slices: C-speed, no per-element Python work.
        high = bytearray(2 * n)
        high[0::2], high[1::2] = data[0::4], data[1::4]
        his = array("H")
        his.frombytes(high)
        if _LITTLE:
            his.byteswap()
        offsets = array("I", map(bisect_left, repeat(his, BUCKETS), range(BUCKETS)))
        offsets.append(n)
        return cls(offsets, bytes(data[2::4]), bytes(data[3::4]))

    @classmethod
    def from_iterable(cls, prefixes: Iterable[int]) -> PrefixSet:
        values = sorted(set(prefixes))
        if values and not 0 <= values[0] <= values[-1] <= 0xFFFFFFFF:
            raise ValueError("prefixes are 32-bit unsigned integers")
        return cls.from_packed(struct.pack(f">{len(values)}I", *values))

    def __contains__(self, prefix: object) -> bool:
        # The search apply_delta makes too, inlined: this is the hot path of every check.
        if not isinstance(prefix, int) or not 0 <= prefix <= 0xFFFFFFFF:
            return False
        offsets = self._offsets
        hi = prefix >> 16
        start, end = offsets[hi], offsets[hi + 1]
        if start == end:
            return False
        third, b = self._third, (prefix >> 8) & 0xFF
        i = bisect_left(third, b, start, end)
        fourth, c = self._fourth, prefix & 0xFF
        while i < end and third[i] == b:
            if fourth[i] >= c:
                return fourth[i] == c
            i += 1
        return False

    def __len__(self) -> int:
        return len(self._third)

    def __iter__(self) -> Iterator[int]:
        for chunk in self._wire_chunks():
            for (prefix,) in struct.iter_unpack(">I", chunk):
                yield prefix

    @property
    def nbytes(self) -> int:
        """Bytes held by the offsets and the two byte planes (the set's whole payload)."""
        return self._offsets.itemsize * len(self._offsets) + 2 * len(self._third)

    def to_packed(self) -> bytes:
        """The wire form: sorted 4-byte big-endian prefixes, concatenated."""
        return b"".join(self._wire_chunks())

    def checksum(self) -> str:
        """SHA-256 (hex) of :meth:`to_packed`, hashed piece by piece as it is rebuilt."""
        digest = hashlib.sha256()
        for chunk in self._wire_chunks():
            digest.update(chunk)
        return digest.hexdigest()

    def _wire_chunks(self) -> Iterator[bytearray]:
        # One piece per first byte (256 buckets): small enough to stay in the CPU cache
        # between being written and being hashed, and no 4-byte-per-member copy is held.
        offsets, third, fourth = self._offsets, self._third, self._fourth
        for first in range(256):
            lo = first << 8
            start, end = offsets[lo], offsets[lo + 256]
            n = end - start
            if not n:
                continue
            out = bytearray(_BYTE[first] + b"\0\0\0") * n  # the first byte is set
            sizes = map(sub, offsets[lo + 1 : lo + 257], offsets[lo : lo + 256])
            out[1::4] = b"".join(map(mul, _BYTE, sizes))
            out[2::4] = third[start:end]
            out[3::4] = fourth[start:end]
            yield out

    def apply_delta(self, added: Iterable[int], removed: Iterable[int]) -> PrefixSet:
        """A new set with ``added`` inserted and ``removed`` taken out (removal wins).

        One pass in prefix order: every change is located in the old planes by bisection,
        the unchanged runs between changes are joined as zero-copy views, and the offsets
        are shifted by a running sum of the bucket size changes. The Python work is per
        change, the rest is memory copies, and ``self`` is left untouched.

        Raises:
            ValueError: a prefix is not a 32-bit unsigned integer.
        """
        gone = set(removed)
        # A change is the prefix shifted left by one, its low bit set for an insertion.
        changes = sorted([p << 1 | 1 for p in set(added) - gone] + [p << 1 for p in gone])
        if not changes:
            return self
        if not 0 <= changes[0] <= changes[-1] <= 0x1FFFFFFFF:
            raise ValueError("prefixes are 32-bit unsigned integers")
        # The new planes are runs of old members, each followed by an inserted byte or by
        # nothing (a removal skips one member): run i is starts[i]:stops[i].
        offsets, third, fourth = self._offsets, self._third, self._fourth
        starts, stops = [0], []
        thirds: list[bytes] = []
        fourths: list[bytes] = []
        growth = [0] * (BUCKETS + 1)
        for change in changes:
            prefix = change >> 1
            hi, b, c = prefix >> 16, (prefix >> 8) & 0xFF, prefix & 0xFF
            # Where the prefix is or would go, found as __contains__ finds it.
            end = offsets[hi + 1]
            at = bisect_left(third, b, offsets[hi], end)
            while at < end and third[at] == b and fourth[at] < c:
                at += 1
            present = at < end and third[at] == b and fourth[at] == c
            if change & 1:
                if present:
                    continue
                starts.append(at)
                thirds.append(_BYTE[b])
                fourths.append(_BYTE[c])
                growth[hi + 1] += 1
            elif present:
                starts.append(at + 1)
                thirds.append(b"")
                fourths.append(b"")
                growth[hi + 1] -= 1
            else:
                continue
            stops.append(at)
        if not thirds:
            return self
        stops.append(len(third))
        thirds.append(b"")
        fourths.append(b"")
        runs = list(map(slice, starts, stops))
        return PrefixSet(array("I", map(add, offsets, accumulate(growth))),
                         _splice(third, runs, thirds), _splice(fourth, runs, fourths))

    def save_arrays(self) -> tuple[bytes, bytes, bytes]:
        """The offsets (native byte order) and the two byte planes, for the on-disk format."""
        return self._offsets.tobytes(), self._third, self._fourth

    @classmethod
    def from_arrays(cls, offsets: bytes, third: bytes, fourth: bytes) -> PrefixSet:
        """Rebuild from :meth:`save_arrays`; the caller verifies the checksum afterwards.

        Raises:
            InvalidServiceData: the arrays are inconsistent.
        """
        off = array("I")
        try:
            off.frombytes(offsets)
        except ValueError as exc:
            raise InvalidServiceData("snapshot offsets have a wrong length") from exc
        if (len(off) != BUCKETS + 1 or off[0] != 0 or off[-1] != len(third)
                or len(fourth) != len(third) or any(map(gt, off[:-1], off[1:]))):
            raise InvalidServiceData("snapshot offsets are inconsistent with the prefixes")
        return cls(off, bytes(third), bytes(fourth))
