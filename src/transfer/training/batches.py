"""Shuffled (x, y) batches for `fit`, from arrays in memory or rows on disk.

With a mirrored copy of the samples beside them (`flipped`), each epoch takes every sample
from one or the other with equal chance: a random horizontal flip over cached activations.
Given a size per epoch (`sizes`), images are resized to it as `keras.layers.Resizing` does
(progressive resizing, `transfer.training.progressive_resizing`).
"""

from __future__ import annotations

import math
from typing import Protocol

import keras
import numpy as np


class Rows(Protocol):
    """Anything that gives rows by an array of indices: a NumPy array, a memory map."""

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        """The rows at indices `rows`, in that order."""

    def __len__(self) -> int:
        """Number of rows."""


class Batches(keras.utils.PyDataset):
    """Shuffled (x, y) batches of `x` (in-memory arrays or rows on disk) and labels `y`."""

    def __init__(self, x: Rows, y: np.ndarray, batch_size: int, seed: int,
                 flipped: Rows | None = None, shuffle: bool = True,
                 sizes: list[int] | None = None) -> None:
        """Keep references to the arrays and draw the first epoch's order."""
        super().__init__()
        self.x, self.y, self.flipped = x, y, flipped
        self.batch_size, self.shuffle, self.sizes = batch_size, shuffle, sizes
        self.rng = np.random.default_rng(seed)
        self.epoch = -1
        self.on_epoch_end()

    def __len__(self) -> int:
        """Batches per epoch."""
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch `i` of the current epoch."""
        idx = np.sort(self.order[i * self.batch_size:(i + 1) * self.batch_size])
        x = np.asarray(self.x[idx], dtype=np.float32)
        if self.flipped is not None:
            flip = self.flip[idx]
            x[flip] = self.flipped[idx[flip]]
        size = self.sizes[min(self.epoch, len(self.sizes) - 1)] if self.sizes else x.shape[1]
        if size != x.shape[1]:
            x = np.asarray(keras.ops.image.resize(x, (size, size)))
        return x, self.y[idx]

    def on_epoch_end(self) -> None:
        """Draw a new sample order and new flips; count the epoch."""
        self.epoch += 1
        n = len(self.y)
        self.order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        self.flip = self.rng.random(n) < 0.5
