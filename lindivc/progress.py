"""Progress reporting for long work (push, fetch, pack, gc): rich bars on a terminal, nothing
otherwise. Library functions take an optional Reporter; the CLI passes a RichReporter.

Sizes are in binary units everywhere, bars and summaries alike (:func:`human_bytes`: KiB, MiB,
GiB), and a bar is one line at any terminal width from 40 columns: the description is cut
with an ellipsis before anything else moves.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Callable, Iterable, Iterator, TypeVar

Advance = Callable[[int], None]
T = TypeVar("T")
UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(n: float) -> str:
    """``n`` bytes in binary units: ``512 B``, ``1.5 KiB``, ``187.1 MiB``."""
    return _scaled(n, _unit_of(n))


def _unit_of(n: float) -> int:
    i = 0
    while abs(n) >= 1024 and i < len(UNITS) - 1:
        n /= 1024
        i += 1
    return i


def _scaled(n: float, unit: int, with_unit: bool = True) -> str:
    x = n / 1024 ** unit
    text = f"{x:.0f}" if unit == 0 else f"{x:.1f}"
    return f"{text} {UNITS[unit]}" if with_unit else text


class Reporter:
    """Silent reporter: the default for library calls."""

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None, unit: str = "bytes") -> Iterator[Advance]:
        """A unit of long work; ``advance(n)`` reports ``n`` more bytes (or items, for another
        ``unit``) done. ``total`` None: the amount is not known in advance."""
        yield lambda n: None

    def track(self, items: Iterable[T], description: str, *, size: Callable[[T], int] | None = None) -> Iterator[T]:
        """Each of ``items`` in turn, under one :meth:`task` that advances as each is done: by one
        item, or with ``size``, by ``size(item)`` bytes. No task at all for no items."""
        items = list(items)
        if not items:
            return
        total = sum(size(x) for x in items) if size else len(items)
        with self.task(description, total, unit="bytes" if size else "objects") as advance:
            for x in items:
                yield x
                advance(size(x) if size else 1)

    def note(self, message: str) -> None:
        pass


class RichReporter(Reporter):
    """Progress bars with size, rate and time left, on stderr (only when it is a terminal)."""

    def __init__(self, console=None) -> None:
        self._console = console
        self._lock = threading.Lock()

    @property
    def console(self):
        """The rich console, made on first use (importing rich costs ~30 ms a no-op command skips)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True)
        return self._console

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None, unit: str = "bytes") -> Iterator[Advance]:
        from rich.progress import Progress

        with Progress(*_columns(unit, total is not None, self.console.width), console=self.console, transient=False, expand=True,
                      disable=not self.console.is_terminal) as p:
            tid = p.add_task(description, total=total)
            lock = threading.Lock()

            def advance(n: int) -> None:
                with lock:
                    p.advance(tid, n)

            yield advance

    def note(self, message: str) -> None:
        self.console.print(message, highlight=False)


BAR_MIN = 10  # columns the bar keeps however narrow the terminal


def _columns(unit: str, known_total: bool, width: int) -> list:
    """The columns of one bar ``width`` characters wide: description (cut first when space is
    short), bar, amount, rate (bytes only), time left (or elapsed, when the total is unknown).
    Every column but the description and the bar has a fixed width, so a bar never changes
    shape or wraps."""
    from rich.progress import (BarColumn, ProgressColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    from rich.table import Column
    from rich.text import Text

    class Amount(ProgressColumn):
        """``143.1/187.1 MiB``, or ``143.1 MiB`` when the total is unknown; counts for other units."""

        def render(self, task) -> Text:
            done = int(task.completed)
            if unit != "bytes":
                text = f"{done}/{int(task.total)}" if task.total is not None else f"{done}"
            elif task.total is None:
                text = human_bytes(done)
            else:
                u = _unit_of(task.total)
                text = f"{_scaled(done, u, False)}/{_scaled(task.total, u)}"
            return Text(text, style="progress.download")

    class Rate(ProgressColumn):
        """``12.3 MiB/s`` (binary units, as every other size lindivc prints)."""

        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("?" if speed is None else f"{human_bytes(speed)}/s", style="progress.data.speed")

    def fixed(width: int) -> Column:
        return Column(width=width, no_wrap=True, justify="right")

    # widest values: "1023.9/1023.9 GiB", "1023.9 MiB/s", "0:00:00"
    widths = [17, 12, 7] if unit == "bytes" else [13, 7]
    right = [Amount(table_column=fixed(widths[0]))]
    if unit == "bytes":
        right.append(Rate(table_column=fixed(widths[1])))
    right.append(TimeRemainingColumn(table_column=fixed(7)) if known_total else TimeElapsedColumn(table_column=fixed(7)))
    room = width - sum(widths) - len(widths) - 1 - BAR_MIN  # one space between columns
    desc = Column(no_wrap=True, overflow="ellipsis", max_width=max(8, room))
    return [TextColumn("{task.description}", table_column=desc),
            BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=BAR_MIN)), *right]
