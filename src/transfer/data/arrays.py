"""The prepared splits on disk: uint8 image arrays written streaming, read memory-mapped."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


def write_images(path: Path, count: int, size: int,
                 load: Callable[[int], np.ndarray], workers: int = 4) -> None:
    """Write `load(i)` for i in 0..count-1 into a uint8 .npy of shape (count, size, size, 3).

    Images are decoded by a thread pool and streamed into a memory-mapped file, so memory stays
    bounded by a few images whatever the dataset size.
    """
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, size, size, 3))
    with ThreadPoolExecutor(workers) as pool:
        for i, image in enumerate(pool.map(load, range(count))):
            out[i] = image
    out.flush()
    del out


def load_split(directory: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map the images of one split written by `fetch`, with their labels."""
    directory = Path(directory)
    return (np.load(directory / f"{split}_x.npy", mmap_mode="r"),
            np.load(directory / f"{split}_y.npy"))
