"""Arrays on disk: `.npy` files written in parts through a memory map (bounded memory), and
the prepared splits read memory-mapped."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


@contextlib.contextmanager
def array_file(path: Path, shape: tuple[int, ...], dtype: type) -> Iterator[np.ndarray]:
    """A new `.npy` file of `shape` and `dtype`, memory-mapped to be written in parts; flushed
    and closed when the block ends."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    try:
        yield out
    finally:
        out.flush()
        del out


def write_images(path: Path, count: int, size: int,
                 load: Callable[[int], np.ndarray], workers: int = 4) -> None:
    """Write `load(i)` for i in 0..count-1 into a uint8 .npy of shape (count, size, size, 3).

    Images are decoded by a thread pool and streamed into a memory-mapped file, so memory stays
    bounded by a few images whatever the dataset size.
    """
    with (array_file(path, (count, size, size, 3), np.uint8) as out,
          ThreadPoolExecutor(workers) as pool):
        for i, image in enumerate(pool.map(load, range(count))):
            out[i] = image


def load_split(directory: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map the images of one split written by `fetch`, with their labels."""
    directory = Path(directory)
    return (np.load(directory / f"{split}_x.npy", mmap_mode="r"),
            np.load(directory / f"{split}_y.npy"))
