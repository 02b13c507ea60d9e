"""Progress of long work: a bar with rate and ETA on a terminal, a plain line now and then in
a log (DVC captures a stage's output when it runs in a queue or a CI job)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
LOG_EVERY = 30.0  # seconds between progress lines when the output is not a terminal


def on_terminal() -> bool:
    """True when stderr is a terminal (bars redraw there; in a file they would pile up)."""
    return sys.stderr.isatty()


class Ticker:
    """Progress lines for a log: `desc: done/total units (share), elapsed, about N s left`, at
    most one every LOG_EVERY seconds (and one when the work ends, if `last_line`)."""

    def __init__(self, desc: str, total: int | None, unit: str = "batch",
                 last_line: bool = True) -> None:
        """Start the clock for `total` units of work (None: not known)."""
        self.desc, self.total, self.unit, self.last_line = desc, total, unit, last_line
        self.start = self.last = time.perf_counter()

    def tick(self, done: int) -> None:
        """`done` units are done: print a line if LOG_EVERY seconds passed since the last one."""
        now = time.perf_counter()
        finished = done == self.total
        if now - self.last < LOG_EVERY and not (finished and self.last_line):
            return
        self.last, elapsed = now, now - self.start
        if self.total:
            count = f"{done}/{self.total} {self.unit}es ({done / self.total:.0%})"
            left = "" if finished else f", about {elapsed / done * (self.total - done):.0f} s left"
        else:
            count, left = f"{done} {self.unit}es", ""
        print(f"{self.desc}: {count}, {elapsed:.0f} s{left}", flush=True)


def progress(items: Iterable[T], total: int, desc: str, unit: str = "batch") -> Iterator[T]:
    """`items` with a tqdm bar on a terminal, else a line every LOG_EVERY seconds and at the end
    (`Ticker`)."""
    if on_terminal():
        yield from tqdm(items, total=total, desc=desc, unit=unit, mininterval=1)
        return
    ticker = Ticker(desc, total, unit)
    for done, item in enumerate(items, 1):
        yield item
        ticker.tick(done)


def keras_verbosity() -> int:
    """`fit`'s verbose: a progress bar on a terminal, one line per epoch otherwise (with
    `transfer.training.fitting`'s lines within the epoch)."""
    return 1 if on_terminal() else 2
