"""The post-check queue (补查, rule 9) in the outbox's PostgreSQL database, with the
interface of :class:`credit_check._postcheck.PostCheckQueue`: any host queues, and rows are
claimed with ``FOR UPDATE SKIP LOCKED`` and a lease, so that — with the follower role held
as an advisory lock — each degraded decision is post-checked once across hosts.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any

from pydantic import ValidationError

from credit_check._crypto import FieldCipher
from credit_check._exceptions import CreditCheckError, OutboxError
from credit_check._models import Decision
from credit_check._pg import Conn, Database
from credit_check._postcheck import _AAD, LEASE

logger = logging.getLogger("credit_check")

TABLE = "credit_check_postcheck"
FOLLOWER_ROLE = "credit-check/follower"


class PgPostCheckQueue:
    """Durable queue of degraded decisions awaiting a post-check, shared by every host.

    Args:
        db: the outbox database (its tables made by the outbox's schema).
        cipher: encrypts each stored decision.
    """

    def __init__(self, db: Database, cipher: FieldCipher,
                 pilot_codes: tuple[str, ...] = ()) -> None:
        self._db = db
        self._cipher = cipher
        # Decisions on pilot-period codes were valid when made: they must load again.
        self._context = {"allow": pilot_codes}
        self._pid = os.getpid()
        self.owner = f"{self._pid}:{uuid.uuid4().hex[:12]}"

    def _run(self, what: str, work: Any, begin: str | None = None) -> Any:
        try:
            return self._db.run(work, begin=begin)
        except Exception as exc:
            raise OutboxError(f"cannot {what} the post-check queue in {self._db.shown}: "
                              f"{self._db.message(exc)}") from exc

    def add(self, decision: Decision) -> None:
        """Queue a degraded decision durably (a decision id is queued once).

        Raises:
            OutboxError: the database cannot be written.
        """
        blob = self._cipher.encrypt(decision.model_dump_json().encode(), _AAD)
        self._run("write", lambda c: c.execute(
            f"INSERT INTO {TABLE} (decision_id, decision, created_at) VALUES (?, ?, ?) "  # noqa: S608
            "ON CONFLICT (decision_id) DO NOTHING",
            (decision.decision_id, blob, decision.decided_at.isoformat())))

    def claim(self, limit: int = 100) -> list[tuple[int, Decision]]:
        """Lease the oldest due decisions to this process, as ``(seq, decision)``; rows
        another process is claiming at this moment are skipped, not waited for. A row that
        does not decrypt or parse is set aside with an ERROR.

        Raises:
            OutboxError: the database cannot be read or written.
        """
        if self._pid != os.getpid():
            self._pid, self.owner = os.getpid(), f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
        now = time.time()

        def work(conn: Conn) -> list[Any]:
            return conn.execute(
                f"UPDATE {TABLE} SET lease_until = ?, lease_owner = ? WHERE seq IN ("  # noqa: S608
                f"SELECT seq FROM {TABLE} WHERE state = 0 AND lease_until <= ? ORDER BY seq "
                "LIMIT ? FOR UPDATE SKIP LOCKED) RETURNING seq, decision",
                (now + LEASE, self.owner, now, limit)).fetchall()

        rows = sorted(self._run("read", work, begin="BEGIN"))
        found = []
        for seq, blob in rows:
            try:
                plain = self._cipher.decrypt(bytes(blob), _AAD)
                found.append((int(seq), Decision.model_validate_json(plain, context=self._context)))
            except CreditCheckError:
                self.set_aside(int(seq), "cannot be decrypted with the current encryption key")
            except ValidationError:
                self.set_aside(int(seq), "written by an incompatible version")
        return found

    def set_aside(self, seq: int, reason: str) -> None:
        """Keep a row that cannot be post-checked out of the way, visibly."""
        self._run("write", lambda c: c.execute(
            f"UPDATE {TABLE} SET state = 2, reason = ? WHERE seq = ?", (reason, seq)))  # noqa: S608
        logger.error("post-check queue: a queued decision %s; it is kept aside, not "
                     "post-checked (see Checker.status().post_check_set_aside)", reason)

    def attempted(self, seq: int) -> None:
        """Count a failed post-check attempt and give the row back."""
        self._run("write", lambda c: c.execute(
            f"UPDATE {TABLE} SET attempts = attempts + 1, lease_until = 0 WHERE seq = ?",  # noqa: S608
            (seq,)))

    def done(self, seq: int) -> None:
        """Remove a post-checked row."""
        self._run("write", lambda c: c.execute(f"DELETE FROM {TABLE} WHERE seq = ?",  # noqa: S608
                                               (seq,)))

    def _count(self, state: int) -> int:
        rows = self._run("read", lambda c: c.execute(
            f"SELECT COUNT(*) FROM {TABLE} WHERE state = ?", (state,)).fetchall())  # noqa: S608
        return int(rows[0][0])

    def size(self) -> int:
        """How many decisions await a post-check."""
        return self._count(0)

    def set_aside_count(self) -> int:
        """How many queued decisions cannot be post-checked (see :meth:`claim`)."""
        return self._count(2)

    def reset_lock(self) -> None:
        """Nothing to reset: the pool is per process (see ``_pg.Database``)."""

    def close(self) -> None:
        """The database is closed by its owner (the Checker)."""
