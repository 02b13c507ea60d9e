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


def progress(items: Iterable[T], total: int, desc: str, unit: str = "batch") -> Iterator[T]:
    """`items` with a tqdm bar on a terminal, else a line every LOG_EVERY seconds and at the end:
    `desc: done/total units (share), elapsed, about N s left`."""
    if on_terminal():
        yield from tqdm(items, total=total, desc=desc, unit=unit, mininterval=1)
        return
    start = last = time.perf_counter()
    done = 0
    for done, item in enumerate(items, 1):
        yield item
        now = time.perf_counter()
        if now - last >= LOG_EVERY or done == total:
            last, elapsed = now, now - start
            left = f", about {elapsed / done * (total - done):.0f} s left" if done < total else ""
            print(f"{desc}: {done}/{total} {unit}es ({done / total:.0%}), {elapsed:.0f} s"
                  f"{left}", flush=True)


def keras_verbosity() -> int:
    """`fit`'s verbose: a progress bar on a terminal, one line per epoch otherwise."""
    return 1 if on_terminal() else 2
