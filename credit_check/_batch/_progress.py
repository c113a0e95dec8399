"""check-file's progress bar: ``rich`` on a terminal (the ``cli`` extra), else a plain
line; nothing at all when disabled (not a terminal, ``--quiet``, ``--json``)."""

from __future__ import annotations

import sys
import time
from typing import Any


class Progress:
    """Counts checked rows, shown on stderr while enabled; a context manager."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and total > 0
        self.done = 0
        self._started = time.monotonic()
        self._rich: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self.enabled:
            try:
                from rich.console import Console
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    TextColumn,
                    TimeRemainingColumn,
                )
                from rich.progress import Progress as RichProgress
            except ImportError:
                return self
            self._rich = RichProgress(TextColumn("核查 checking"), BarColumn(),
                                      MofNCompleteColumn(), TimeRemainingColumn(),
                                      console=Console(stderr=True), transient=True)
            self._rich.start()
            self._task = self._rich.add_task("check", total=self.total)
        return self

    def advance(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done)
            return
        width = 30
        filled = width * self.done // self.total
        rate = self.done / max(time.monotonic() - self._started, 1e-6)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] "
                         f"{self.done}/{self.total}  {rate:,.0f}/s")
        sys.stderr.flush()

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()
        elif self.enabled:
            sys.stderr.write("\n")
