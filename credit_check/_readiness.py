"""Readiness of a Checker (DESIGN §9.8), for load balancers and orchestrators: ready means
a measure catalogue is present and the record store takes writes. Stale data is reported
(``stale``, the degraded causes) but does not take an instance out of rotation: its checks
go online, or degrade and are post-checked.

The record store is probed by writing, not by asking the permission bits: root ignores
them, and a full file system still grants permission. A local outbox is probed with one
page written (and removed) beside the journals; a PostgreSQL outbox by asking the
database whether it takes writes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from credit_check._checker_types import CheckerStatus
from credit_check._outbox import Outbox
from credit_check._outbox._pg_outbox import PgOutbox

logger = logging.getLogger("credit_check")

PROBE_BYTES = 4096
_probe_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Readiness:
    """Whether a Checker should receive traffic, and why not.

    Attributes:
        ready: a catalogue is present and the record store takes writes.
        catalogue: a measure catalogue is present.
        records_writable: decision records can be written (always True with feedback off).
        problems: what keeps the instance out of rotation, one line each.
        status: the full :meth:`Checker.status` (stale data and degraded causes are
            reported there, never a reason to be unready).
    """

    ready: bool
    catalogue: bool
    records_writable: bool
    problems: tuple[str, ...]
    status: CheckerStatus

    def as_json(self) -> dict[str, Any]:
        """The body a readiness endpoint answers with (no personal data in it)."""
        status = asdict(self.status)
        status["outbox_damaged"] = list(self.status.outbox_damaged)
        status["degraded_causes"] = list(self.status.degraded_causes)
        return {"ready": self.ready, "catalogue": self.catalogue,
                "records_writable": self.records_writable, "problems": list(self.problems),
                "stale": self.status.stale, "status": status}


def probe_directory(directory: Path) -> str | None:
    """Write one page into ``directory`` and remove it; None when that worked, else why.

    A full file system fails the write (or its flush) with ENOSPC; a read-only one the
    creation with EROFS or EACCES.
    """
    path = directory / f".ready-probe-{os.getpid()}-{threading.get_ident()}"
    with _probe_lock:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            return f"cannot create a file in {directory}: {exc.strerror or exc}"
        try:
            try:
                written = os.write(fd, b"\0" * PROBE_BYTES)
                if written != PROBE_BYTES:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            return f"cannot write to {directory}: {exc.strerror or exc}"
        finally:
            # A file we could not remove is harmless: the next probe truncates it.
            with contextlib.suppress(OSError):
                os.unlink(path)
    return None


def records_problem(outbox: Outbox | PgOutbox | None, status: CheckerStatus) -> str | None:
    """Why the checker's record store takes no writes now, or None (also with feedback
    off: there is nothing to write)."""
    if outbox is None:
        return None
    pending = status.outbox_pending or 0
    if pending >= outbox.hard_limit:
        return (f"the outbox holds {pending} undelivered records, its hard bound; see "
                "'credit-check outbox status'")
    if isinstance(outbox, PgOutbox):
        try:
            row = outbox.db.run(lambda conn: conn.execute("SELECT pg_is_in_recovery()")
                                .fetchone(), begin=None, retry_for=1.0)
        except Exception as exc:
            return f"the outbox database {outbox.db.shown} fails: {outbox.db.message(exc)}"
        return "the outbox database is a read-only replica" if row and row[0] else None
    target = outbox.journal_dir if outbox.journal_dir.is_dir() else outbox.directory
    return probe_directory(target)


def readiness(status: CheckerStatus, records_problem: str | None) -> Readiness:
    """The readiness of a checker whose status is ``status`` and whose record store
    probe said ``records_problem`` (None: writable)."""
    problems = []
    if not status.ready:
        problems.append("尚无措施目录 / no measure catalogue yet: checks would get the "
                        "fallback")
    if records_problem is not None:
        problems.append(f"记录无法写入 / decision records cannot be written: {records_problem}"
                        " (guarded requests are refused until they can)")
    return Readiness(ready=not problems, catalogue=status.ready,
                     records_writable=records_problem is None, problems=tuple(problems),
                     status=status)


def endpoint_answer(checker: Any) -> tuple[int, dict[str, Any]]:
    """What a readiness endpoint answers: ``(200 | 503, body)``. A failure of the probe
    itself is an unready answer, logged, never an error raised into the host app.

    Args:
        checker: a Checker, or a zero-argument callable that returns one.
    """
    try:
        for _ in range(2):  # a factory, or the adapter's lookup of one
            if not hasattr(checker, "readiness") and callable(checker):
                checker = checker()
        found: Readiness = checker.readiness()
    except Exception as exc:
        logger.exception("the readiness probe failed")
        return 503, {"ready": False, "problems": [
            f"the readiness probe failed: {type(exc).__name__}; see the log"]}
    return (200 if found.ready else 503), found.as_json()


HEALTHY = {"status": "ok"}
