"""Progress reporting for long work (push, fetch, pack, gc): rich bars on a terminal, nothing
otherwise. Library functions take an optional Reporter; the CLI passes a RichReporter."""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterator

Advance = Callable[[int], None]


class Reporter:
    """Silent reporter: the default for library calls."""

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None, unit: str = "bytes") -> Iterator[Advance]:
        yield lambda n: None

    def note(self, message: str) -> None:
        pass


class RichReporter(Reporter):
    """Progress bars with bytes, rate and time left, on stderr (only when it is a terminal)."""

    def __init__(self, console=None) -> None:
        from rich.console import Console

        self.console = console or Console(stderr=True)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None, unit: str = "bytes") -> Iterator[Advance]:
        from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)

        cols = [TextColumn("{task.description}"), BarColumn()]
        if unit == "bytes":
            cols += [DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn()]
        else:
            cols += [MofNCompleteColumn(), TimeRemainingColumn()]
        with Progress(*cols, console=self.console, transient=False,
                      disable=not self.console.is_terminal) as p:
            tid = p.add_task(description, total=total)
            lock = threading.Lock()

            def advance(n: int) -> None:
                with lock:
                    p.advance(tid, n)

            yield advance

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False)
