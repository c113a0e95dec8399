"""The event-loop group commit: one transaction per loop turn, each waiter resumes after it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from credit_check._exceptions import OutboxError
from credit_check._loop_commit import LoopCommitter


def test_records_of_one_turn_share_a_commit_and_later_ones_get_their_own() -> None:
    commits: list[list[int]] = []
    woken: list[int] = []
    committer = LoopCommitter(lambda items: commits.append([i["n"] for i in items]),
                              woken.append)

    async def main() -> None:
        await asyncio.gather(*(committer.record({"n": n}) for n in range(4)))
        assert commits == [[0, 1, 2, 3]]  # committed before any of them returned
        await committer.record({"n": 4})

    asyncio.run(main())
    assert commits == [[0, 1, 2, 3], [4]] and woken == [4, 1]


def test_a_failed_commit_raises_in_every_waiter_and_the_next_turn_starts_afresh() -> None:
    calls: list[int] = []

    def commit(items: list[dict[str, Any]]) -> None:
        calls.append(len(items))
        if len(calls) == 1:
            raise OutboxError("disk full")

    committer = LoopCommitter(commit, lambda n: None)

    async def main() -> list[Any]:
        first = await asyncio.gather(committer.record({}), committer.record({}),
                                     return_exceptions=True)
        await committer.record({})
        return first

    assert [type(r) for r in asyncio.run(main())] == [OutboxError, OutboxError]
    assert calls == [2, 1]


def test_a_waiter_cancelled_before_the_commit_still_has_its_record_committed() -> None:
    commits: list[int] = []
    committer = LoopCommitter(lambda items: commits.append(len(items)), lambda n: None)

    async def main() -> None:
        task = asyncio.ensure_future(committer.record({}))
        other = asyncio.ensure_future(committer.record({}))
        await asyncio.sleep(0)  # both have queued their record
        task.cancel()
        await other
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert commits == [2]


def test_each_event_loop_has_its_own_batch() -> None:
    commits: list[int] = []
    committer = LoopCommitter(lambda items: commits.append(len(items)), lambda n: None)
    for _ in range(2):
        asyncio.run(committer.record({}))
    assert commits == [1, 1]
