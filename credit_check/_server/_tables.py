"""What both SQL stores read the same way (mixed into ``SQLiteStore`` and
``PostgresStore``): meta values, the staged catalogue, the snapshot and its deltas, API
keys. Each engine gives ``_conn()`` (a connection taking ``?`` statements), ``refresh()``,
its prefix index and the cipher of its sealed columns."""

from __future__ import annotations

import hmac
import json
from abc import ABC, abstractmethod
from typing import Any

from credit_check._crypto import FieldCipher, api_key_hash
from credit_check._server import _catalog_forms
from credit_check._server._prefix_index import PrefixIndex, unpack
from credit_check._server._store import (
    ApiKey,
    Delta,
    Head,
    SnapshotGone,
    SnapshotState,
    StoredCatalog,
)

KEPT_DELTAS = 5000


class SharedReads(ABC):
    """The reads of a SQL store that do not depend on its engine."""

    index: PrefixIndex
    _seal: FieldCipher

    @abstractmethod
    def _conn(self) -> Any:
        """This thread's connection (it takes ``?`` statements)."""

    @abstractmethod
    def refresh(self, max_age: float = 0.0) -> Head:
        """Catch this process up with the database."""

    def meta(self, name: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def staged_catalog(self) -> StoredCatalog | None:
        return _catalog_forms.staged(self.meta(_catalog_forms.staged_name()))

    def snapshot(self) -> SnapshotState:
        self.refresh()
        return self.index.state()

    def delta(self, since: int) -> Delta:
        self.refresh()
        state = self.index.state()
        current = state.version
        if since > current or since < 0:
            raise SnapshotGone(f"version {since} is unknown; the current version is {current}")
        rows = self._conn().execute(
            "SELECT version, rebuild, added, removed, changed, lifted FROM deltas WHERE "
            "version > ? AND version <= ? ORDER BY version", (since, current)).fetchall()
        if len(rows) != current - since or any(r[1] for r in rows):
            raise SnapshotGone(f"no delta from version {since} is kept (the set was rebuilt "
                               "or the deltas are older than kept); fetch the full snapshot")
        return compose(since, state, rows)

    def find_key(self, api_key: str) -> ApiKey | None:
        wanted = api_key_hash(api_key)
        row = self._conn().execute(
            "SELECT key_id, department, key_hash, feedback_key, allow_persons FROM keys "
            "WHERE key_hash = ? AND revoked = 0", (wanted,)).fetchone()
        if row is None or not hmac.compare_digest(row[2], wanted):
            return None
        return ApiKey(row[0], row[1], self._seal.decrypt(bytes.fromhex(row[3])), bool(row[4]))


def compose(since: int, state: SnapshotState, rows: list[Any]) -> Delta:
    """The net change over the versions after ``since``: a prefix added then removed is
    neither; ``changed`` holds prefixes touched on the way that are in the final set."""
    added: set[int] = set()
    removed: set[int] = set()
    present: dict[int, bool] = {}
    lifted: set[str] = set()
    for _, _, step_added, step_removed, changed, lifted_text in rows:
        for p in unpack(step_removed):
            present[p] = False
            if p in added:
                added.discard(p)
            else:
                removed.add(p)
        for p in unpack(step_added):
            present[p] = True
            if p in removed:
                removed.discard(p)
            else:
                added.add(p)
        for p in unpack(changed):
            present[p] = True
        lifted.update(json.loads(lifted_text or "[]"))
    touched = {p for p, there in present.items() if there}
    return Delta(since, state, added, removed, touched - added - removed, lifted)
