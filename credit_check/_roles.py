"""Roles elected among the processes that share a data directory (DESIGN rule 14): the
*sender* (feedback delivery) and the *follower* (post-checks and other work that must run
once). A role is an exclusive OS file lock (``flock``): it dies with its holder, so a killed
holder is replaced by the next process that asks, and no lease has to run out first.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import threading
import time
import weakref
from pathlib import Path

logger = logging.getLogger("credit_check")

SENDER_LOCK = "sender.lock"
FOLLOWER_LOCK = "follower.lock"


class RoleLock:
    """One role of a data directory, held by at most one process at a time.

    The lock file holds the holder's pid (for ``status`` displays only; the lock itself is
    the authority). A forked child never inherits the role: it closes its copy of the
    descriptor, which leaves the parent's lock in place.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=functools.partial(_after_fork, weakref.ref(self)))

    @property
    def held(self) -> bool:
        """Whether this process holds the role."""
        return self._fd is not None and self._pid == os.getpid()

    def try_acquire(self) -> bool:
        """Take the role if nobody holds it; True when this process holds it now."""
        with self._lock:
            if self.held:
                return True
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:  # no room for the lock file: nobody can take the role
                logger.warning("cannot open the role lock %s: %s", self.path, exc)
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            _write_pid(fd)
            self._fd, self._pid = fd, os.getpid()
            return True

    def acquire(self, timeout: float | None = None, poll: float = 0.2) -> bool:
        """Wait for the role (at most ``timeout`` seconds); True when held."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.try_acquire():
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(poll)
        return True

    def fileno(self) -> int:
        """The locked descriptor (to hand the role to a child process: while the child
        holds a copy, the role stays taken after this process lets go of its own)."""
        if not self.held or self._fd is None:
            raise RuntimeError("the role is not held by this process")
        return self._fd

    def adopt(self, fd: int) -> None:
        """Take the role through a descriptor a parent handed over (already locked)."""
        with self._lock:
            self._fd, self._pid = fd, os.getpid()
            _write_pid(fd)

    def release(self) -> None:
        """Give the role up (the next process that asks takes it), or, after handing it to
        a child with :meth:`fileno`, let go of this process's copy only."""
        with self._lock:
            if self.held and self._fd is not None:
                os.close(self._fd)
            self._fd = None

    def holder(self) -> int | None:
        """The pid of the process holding the role, or None when nobody does."""
        if self.held:
            return os.getpid()
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _forget_in_child(self) -> None:
        # The descriptor is shared with the parent: closing our copy keeps its lock.
        if self._fd is not None and self._pid != os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        self._lock = threading.Lock()


def _write_pid(fd: int) -> None:
    # For display only (``holder``): written over the old pid, then cut to length, so a
    # reader never finds the file empty.
    data = str(os.getpid()).encode()
    with contextlib.suppress(OSError):
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))


def _after_fork(ref: weakref.ReferenceType[RoleLock]) -> None:
    role = ref()
    if role is not None:
        role._forget_in_child()
