"""The record journal: where ``check()`` puts its decision record before returning.

Each process appends to a journal file of its own in ``<data dir>/journal/``: one
``os.write`` of one frame per record into the page cache, with no lock shared with any
other process and nothing to commit. That is the same guarantee SQLite's WAL with
``synchronous=NORMAL`` gave (the record survives the process being killed at any instant,
not a power loss) at the cost of a system call. The sender (one per data directory) tails
every journal into the delivery store and deletes a journal once it is imported and its
writer is gone.

A frame is ``MAGIC (2 bytes) | length (4, big-endian) | CRC-32 of the payload (4) |
payload``; the payload is AES-256-GCM (12-byte nonce, then ciphertext and tag) of the
record (see ``_codec``). The CRC lets a reader tell a torn or damaged frame without the
key; the GCM tag proves the content. A writer holds an exclusive ``flock`` on its journal
for as long as it writes to it, so a reader that can take the lock knows the writer is gone
and that the journal is complete (a torn last frame is then a write that never returned).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import struct
import threading
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credit_check._crypto import FieldCipher

logger = logging.getLogger("credit_check.outbox")

JOURNAL_DIR = "journal"
SUFFIX = ".jnl"
HIDDEN = ".new"  # a journal being created
MAGIC = b"\xcc\x01"
HEADER = struct.Struct(">2sII")
AAD = b"credit-check/journal/v1"
# A frame larger than this is damage, not a record (records are a few kB at most).
MAX_FRAME = 1 << 24
# A writer starts a new journal past this size, so the sender can delete imported ones.
ROTATE_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class Scan:
    """What a pass over a journal's bytes found.

    Attributes:
        frames: ``(offset, payload)`` of every complete, intact frame, in order.
        end: the offset up to which the bytes are accounted for (the next read starts here).
        skipped: byte ranges ``(start, end)`` of damage that later intact frames prove is
            not a write in progress.
        tail: bytes after ``end`` that do not (yet) form an intact frame.
    """

    frames: list[tuple[int, bytes]]
    end: int
    skipped: list[tuple[int, int]]
    tail: int


def scan(data: bytes, base: int = 0) -> Scan:
    """Split ``data`` (the journal's bytes from offset ``base``) into frames.

    Damage followed by an intact frame is skipped (and reported); damage or an incomplete
    frame at the end is left as the tail, since it may be a frame still being written.
    """
    frames: list[tuple[int, bytes]] = []
    skipped: list[tuple[int, int]] = []
    pos, size = 0, len(data)
    end = 0
    while pos + HEADER.size <= size:
        magic, length, crc = HEADER.unpack_from(data, pos)
        stop = pos + HEADER.size + length
        if magic == MAGIC and length <= MAX_FRAME and stop <= size:
            payload = data[pos + HEADER.size : stop]
            if zlib.crc32(payload) == crc:
                frames.append((base + pos, payload))
                pos = end = stop
                continue
        # Not an intact frame: damage if an intact frame follows, else the tail (maybe a
        # frame still being written, or cut by the end of this read).
        found = _next_frame(data, pos + 1)
        if found is None:
            break
        skipped.append((base + pos, base + found))
        pos = end = found
    return Scan(frames, base + end, skipped, size - end)


def _next_frame(data: bytes, start: int) -> int | None:
    size = len(data)
    pos = data.find(MAGIC, start)
    while pos != -1 and pos + HEADER.size <= size:
        _, length, crc = HEADER.unpack_from(data, pos)
        stop = pos + HEADER.size + length
        if length <= MAX_FRAME and stop <= size and zlib.crc32(
                data[pos + HEADER.size : stop]) == crc:
            return pos
        pos = data.find(MAGIC, pos + 1)
    return None


class JournalWriter:
    """This process's journal: appends encrypted records, one write each.

    Thread-safe. A forked child never writes to its parent's journal: it starts its own on
    its first record. A failed write is cut back off the file (or, if that fails too, the
    journal is abandoned for a new one), so a damaged frame only ever ends a journal.

    Args:
        directory: the journal directory (created, mode 0700).
        cipher: encrypts each record (the data directory's key).
    """

    def __init__(self, directory: Path, cipher: FieldCipher) -> None:
        self.directory = directory
        self._cipher = cipher
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._pid = os.getpid()
        self._closed = False
        self.path: Path | None = None
        self._prefix, self._counter = b"", 0
        os.register_at_fork(before=functools.partial(_fork_hook, weakref.ref(self), "before"),
                            after_in_parent=functools.partial(_fork_hook, weakref.ref(self),
                                                              "parent"),
                            after_in_child=functools.partial(_fork_hook, weakref.ref(self),
                                                             "child"))

    def append(self, plaintext: bytes) -> None:
        """Encrypt one record and append its frame with one ``write`` (the request path's
        way: one call, the nonce a per-journal random prefix and a counter instead of a
        ``getrandom`` per record); on disk (page cache) on return.

        Raises:
            OSError: the journal cannot be written (disk full, file size limit, …); nothing
                of this call is left in the journal.
        """
        with self._lock:
            if self._closed:
                raise OSError("the feedback journal is closed")
            if self._fd is None or self._pid != os.getpid() or self._size >= ROTATE_BYTES:
                self._open()
            self._counter += 1
            body = self._cipher.encrypt(plaintext, AAD,
                                        self._prefix + self._counter.to_bytes(4, "big"))
            data = HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body
            fd = self._fd
            assert fd is not None
            try:
                done = os.write(fd, data)
                while done < len(data):  # a short write: only on an error condition
                    done += os.write(fd, data[done:])
            except OSError:
                self._cut_back(fd)
                raise
            self._size += done

    def _open(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)  # rotation: the sender may now import and delete it
        self._fd = None
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._pid = os.getpid()
        name = f"{self._pid}-{os.urandom(6).hex()}{SUFFIX}"
        path = self.directory / name
        # Created and locked under a name readers ignore, then renamed into view: a reader
        # must never find a journal unlocked while its writer is alive (it would take it
        # for finished, delete it, and every later record would go to an unlinked file).
        hidden = self.directory / f".{name}{HIDDEN}"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                     0o600)
        try:
            # Held until this journal is closed: a reader that gets it knows we are gone.
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.rename(hidden, path)
        except BaseException:
            os.close(fd)
            hidden.unlink(missing_ok=True)
            raise
        self._fd, self._size, self.path = fd, 0, path
        # Nonces of this journal: never reused with the key (a fresh random prefix per
        # journal, a counter within it; a journal rotates long before 2**32 records).
        self._prefix, self._counter = os.urandom(8), 0

    def _cut_back(self, fd: int) -> None:
        # A partly written frame must not stay in front of the next one.
        try:
            os.ftruncate(fd, self._size)
        except OSError:
            logger.error("cannot cut a failed write back off the feedback journal %s; "
                         "starting a new journal", self.path)
            os.close(fd)
            self._fd = None

    def close(self) -> None:
        """Close the journal (its records stay for the sender)."""
        with self._lock:
            self._closed = True
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None

    def _forget_in_child(self) -> None:
        # Our copy of the parent's descriptor would keep its lock alive after the parent died.
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        self._lock = threading.Lock()


def _fork_hook(ref: weakref.ReferenceType[JournalWriter], when: str) -> None:
    # Holding the lock across fork() means no thread of ours is mid-write at that moment.
    writer = ref()
    if writer is None:
        return
    if when == "before":
        writer._lock.acquire()
    elif when == "parent":
        writer._lock.release()
    else:
        writer._forget_in_child()


def journals(directory: Path) -> list[Path]:
    """The journal files of a directory, oldest first."""
    try:
        found = [p for p in directory.iterdir() if p.name.endswith(SUFFIX)]
    except FileNotFoundError:
        return []
    return sorted(found, key=_mtime)


def unimported_bytes(directory: Path, store: Any) -> int:
    """Bytes in the journals of ``directory`` that the store has not imported yet."""
    offsets: dict[str, int] = store.journal_offsets()
    total = 0
    for path in journals(directory):
        with contextlib.suppress(FileNotFoundError):  # imported and deleted meanwhile
            total += max(0, path.stat().st_size - offsets.get(path.name, 0))
    return total


def unimported_records(directory: Path, store: Any) -> int:
    """How many complete frames the journals of ``directory`` hold beyond what the store
    imported (headers are walked, nothing is decrypted)."""
    offsets: dict[str, int] = store.journal_offsets()
    count = 0
    for path in journals(directory):
        offset = offsets.get(path.name, 0)
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            continue
        pos = 0
        while pos + HEADER.size <= len(data):
            magic, length, _ = HEADER.unpack_from(data, pos)
            if magic != MAGIC or pos + HEADER.size + length > len(data):
                break
            count += 1
            pos += HEADER.size + length
    return count


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class JournalFile:
    """A journal opened for reading: its bytes from an offset, and whether its writer is gone.

    ``finished`` is decided by taking the writer's lock, which this reader then keeps until
    :meth:`close` (so the journal can be deleted without a writer ever reopening it — names
    are never reused).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self.finished = False

    def check_finished(self) -> bool:
        """Whether the writer closed the journal or died (it can never grow again)."""
        if not self.finished:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            self.finished = True
        return True

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def read(self, offset: int, limit: int) -> bytes:
        """Up to ``limit`` bytes from ``offset``."""
        return os.pread(self._fd, limit, offset)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> JournalFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_frames(path: Path, offset: int = 0, *, chunk: int = 4 << 20
                ) -> Iterator[tuple[int, bytes]]:
    """Every intact frame of a journal from ``offset``, as ``(offset, payload)``, skipping
    damage (for salvage and for reads of records not yet imported)."""
    try:
        journal = JournalFile(path)
    except FileNotFoundError:
        return
    with journal:
        while True:
            data = journal.read(offset, chunk)
            if not data:
                return
            found = scan(data, offset)
            yield from found.frames
            if found.end == offset:
                if len(data) < chunk:
                    return
                chunk *= 2  # one frame larger than the chunk
                continue
            offset = found.end
