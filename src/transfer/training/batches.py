"""Shuffled (x, y) batches for `fit`, from arrays in memory or rows on disk.

Given several views of the samples (a list of rows: cached activations of the images and of
their mirrors), each epoch takes every sample from one of them, drawn with equal chance: random
flips over cached activations.
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
    """Shuffled (x, y) batches of `x` (in-memory arrays or rows on disk, or a list of views of
    the same samples) and labels `y`."""

    def __init__(self, x: Rows | list[Rows], y: np.ndarray, batch_size: int, seed: int,
                 shuffle: bool = True) -> None:
        """Keep references to the arrays and draw the first epoch's order."""
        super().__init__()
        self.views = x if isinstance(x, list) else [x]
        self.y = y
        self.batch_size, self.shuffle = batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        """Batches per epoch."""
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch `i` of the current epoch."""
        idx = np.sort(self.order[i * self.batch_size:(i + 1) * self.batch_size])
        view = self.view[idx]
        parts = [np.asarray(rows[idx[view == k]], dtype=np.float32)
                 for k, rows in enumerate(self.views)]
        x = np.empty((len(idx), *parts[0].shape[1:]), dtype=np.float32)
        for k, part in enumerate(parts):
            x[view == k] = part
        return x, self.y[idx]

    def on_epoch_end(self) -> None:
        """Draw a new sample order and each sample's view."""
        n, k = len(self.y), len(self.views)
        self.order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        # Uniform over the views; with two, view 1 (the mirror) where u < 0.5 as ever was.
        self.view = k - 1 - np.minimum((self.rng.random(n) * k).astype(int), k - 1)
