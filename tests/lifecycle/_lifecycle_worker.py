"""A worker process of a shared data directory, for the lifecycle tests that need several
(started with multiprocessing's spawn: importable, arguments picklable)."""

from __future__ import annotations

import datetime as dt
import multiprocessing.synchronize
import os
from typing import Any

from _lifecycle_support import Clock

from credit_check import Checker, Decision


def work(options: dict[str, Any], moment: str | None, out: str, syncs: int,
         barrier: multiprocessing.synchronize.Barrier) -> None:
    """Make a Checker (its clock at ``moment``, if given), wait for the others, sync
    ``syncs`` times and close, writing each on_rescreen call to ``out``."""
    clock = Clock()
    if moment is not None:
        clock.set(dt.datetime.fromisoformat(moment))
    with open(out, "a") as fh:
        def called(original: Decision, new: Decision) -> None:
            fh.write(f"callback {original.decision_id} {new.outcome.value} {os.getpid()}\n")
            fh.flush()

        checker = Checker(**options, clock=clock, on_rescreen=called)
        barrier.wait(60)
        for _ in range(syncs):
            checker.sync()
        checker.close()
