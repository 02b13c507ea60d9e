"""Fixed augmented views of a set of images, for the activation cache: each view mirrors every
image or none, and moves each image by its own random offset, drawn from a seeded generator."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class View:
    """One view of a set of images: all mirrored or none, image i moved by `offsets[i]`."""

    mirrored: bool
    offsets: np.ndarray  # (images, 2) integers: (dy, dx) in pixels

    def apply(self, batch: np.ndarray, rows: slice) -> np.ndarray:
        """The images `batch`, rows `rows` of the set, as this view shows them."""
        return shifted(batch[:, :, ::-1] if self.mirrored else batch, self.offsets[rows])


def shifted(images: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Each image moved by its (dy, dx) offset (the pixel at (y, x) goes to (y + dy, x + dx)),
    the uncovered edge filled with the image mirrored there, as keras.layers.RandomTranslation's
    'reflect' fill does."""
    m = int(np.abs(offsets).max(initial=0))
    if m == 0:
        return images
    h, w = images.shape[1:3]
    padded = np.pad(images, ((0, 0), (m, m), (m, m), (0, 0)), mode="symmetric")
    out = np.empty_like(images)
    for i, (dy, dx) in enumerate(offsets):
        out[i] = padded[i, m - dy:m - dy + h, m - dx:m - dx + w]
    return out


def drawn(seed: int, views: int, shape: tuple[int, int, int], flip: bool,
          translation: float) -> list[View]:
    """`views` views of `shape[0]` images of `shape[1:]` pixels: with `flip` every other one
    mirrored (view 1, 3, ...); offsets uniform in whole pixels up to `translation` of each
    side, the same for the same seed."""
    n, h, w = shape
    rng = np.random.default_rng([seed, 1])  # a stream of its own, apart from the batches'
    dy, dx = round(translation * h), round(translation * w)
    return [View(flip and k % 2 == 1, np.stack([rng.integers(-dy, dy + 1, n),
                                                rng.integers(-dx, dx + 1, n)], axis=1))
            for k in range(views)]
