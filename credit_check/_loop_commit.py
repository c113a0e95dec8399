"""Group commit for the checks an event loop makes: the decision records of every check
made in one turn of the loop are committed in one transaction, and each check resumes
once its own record is on disk.

A check made in an event loop cannot wait on a lock the way concurrent threads share a
commit (``Outbox._group_commit``): requests that arrive together are handled one after
another in the same thread. So the first check of a turn schedules the commit two turns
later and every check made meanwhile adds its record to it; all of them wait for that one
commit. With one request at a time it costs two more turns of the loop.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import Any

Record = dict[str, Any]


class LoopCommitter:
    """Commits records for coroutines, one transaction per event-loop turn.

    Args:
        commit: writes a list of records durably, in one transaction, or raises.
        after: called with the number of records after each successful commit.
    """

    def __init__(self, commit: Callable[[list[Record]], None],
                 after: Callable[[int], None]) -> None:
        self._commit = commit
        self._after = after
        self._batches: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batch] = (
            weakref.WeakKeyDictionary())

    async def record(self, data: Record) -> None:
        """Return once ``data`` is committed; raise what the commit raised."""
        loop = asyncio.get_running_loop()
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = _Batch(loop, self._commit, self._after)
        await batch.add(data)

    def reset(self) -> None:
        """Forget every loop's batch (in a forked child: the parent's loops are not ours)."""
        self._batches = weakref.WeakKeyDictionary()


class _Batch:
    __slots__ = ("after", "commit", "items", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 commit: Callable[[list[Record]], None], after: Callable[[int], None]) -> None:
        self.loop = loop
        self.commit = commit
        self.after = after
        self.items: list[tuple[Record, asyncio.Future[None]]] = []

    def add(self, data: Record) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self.loop.create_future()
        if not self.items:
            # Commit one turn later: requests whose bytes arrive in the next poll of the
            # loop join this batch (under load ~3.7 records a commit instead of ~1.9).
            self.loop.call_soon(self.loop.call_soon, self.flush)
        self.items.append((data, future))
        return future

    def flush(self) -> None:
        items, self.items = self.items, []
        try:
            self.commit([data for data, _ in items])
        except Exception as exc:  # each waiting check raises it; the loop goes on
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        # A check cancelled while it waited (its client went away) still has its record.
        for _, future in items:
            if not future.done():
                future.set_result(None)
        self.after(len(items))
