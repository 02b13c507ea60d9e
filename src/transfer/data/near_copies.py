"""Near-copies of test images: candidates by cosine similarity, confirmed by aligned pixels.

Two descriptors propose candidates for each test image, its `k` nearest images by cosine
similarity under each: the frozen base's pooled features (cached by `features`) and a coarse
pixel descriptor (8x8 block means, each channel's mean removed) that needs no weights. The
candidates are then compared pixel by pixel on thumbnails of 32 to 63 px (as they are if
smaller), at the best shift of up to `max_shift` pixels, searched coarse to fine: the Pearson
correlation of the overlapping parts, each channel's mean removed (so a brightened copy still
matches), with a floor on the variance so that flat images do not match by chance. A pair is an
exact copy when the thumbnails agree unshifted within `EXACT` grey levels on average (its shift
is then 0), a near copy when the best correlation reaches the threshold.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

SIDE = 32  # thumbnails have between 32 and 63 px a side (block means of the stored images)
COARSE = 8  # the pixel descriptor's side
EXACT = 2.0  # mean absolute difference (0-255) under which an unshifted pair is an exact copy
NOISE = 16.0  # variance floor (grey levels squared): flat images correlate weakly
CHUNK = 1024  # images (or pairs) handled at a time


def block_means(images: np.ndarray, side: int) -> np.ndarray:
    """float32 images shrunk by an integer factor to between `side` and 2 * `side` - 1 px
    (rows and columns past a multiple of the factor are dropped); as they are if smaller."""
    n = images.shape[1]
    f = max(1, n // side)
    m = n // f
    cropped = np.asarray(images[:, :m * f, :m * f], dtype=np.float32)
    return cropped.reshape(len(images), m, f, m, f, 3).mean(axis=(2, 4))


def thumbnails(images: np.ndarray) -> np.ndarray:
    """The images as uint8 thumbnails of at most 63 px, read `CHUNK` at a time."""
    if not len(images):
        return block_means(images[:0], SIDE).astype(np.uint8)
    return np.concatenate([block_means(images[i:i + CHUNK], SIDE).round().astype(np.uint8)
                           for i in range(0, len(images), CHUNK)])


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (float32); a zero row stays zero."""
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def coarse_descriptor(thumbs: np.ndarray) -> np.ndarray:
    """8x8 block means of each thumbnail, each channel's mean removed, as unit rows."""
    coarse = block_means(thumbs, COARSE)
    return unit_rows(coarse - coarse.mean(axis=(1, 2), keepdims=True))


def nearest(queries: np.ndarray, pool: np.ndarray, k: int, same: bool = False) -> np.ndarray:
    """Indices (n_queries, k) of each unit query row's k most cosine-similar rows of `pool`;
    `same` when `pool` is `queries`, so that no row is its own neighbour."""
    k = min(k, len(pool) - same)
    out = np.zeros((len(queries), max(k, 0)), dtype=np.int64)
    if k <= 0:
        return out
    for start in range(0, len(queries), CHUNK):
        sims = queries[start:start + CHUNK] @ pool.T
        if same:
            rows = np.arange(len(sims))
            sims[rows, rows + start] = -np.inf
        out[start:start + CHUNK] = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return out


def shifts(max_shift: int) -> Iterator[tuple[int, int]]:
    """Every (dy, dx) with both within `max_shift`, (0, 0) first."""
    yield 0, 0
    r = range(-max_shift, max_shift + 1)
    yield from ((dy, dx) for dy in r for dx in r if (dy, dx) != (0, 0))


def window(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The part of images `x` that overlaps their copies moved by (dy, dx)."""
    n = x.shape[1]
    return x[:, max(dy, 0):n + min(dy, 0), max(dx, 0):n + min(dx, 0)]


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each pair of float32 images, each channel's mean removed, with the
    variance floor `NOISE` (sums of products: the images should be roughly centred already)."""
    pixels = a.shape[1] * a.shape[2]
    count = pixels * a.shape[3]
    sum_a, sum_b = a.sum(axis=(1, 2)), b.sum(axis=(1, 2))

    def moment(x: np.ndarray, y: np.ndarray, sum_x: np.ndarray, sum_y: np.ndarray) -> np.ndarray:
        """Mean product of the centred x and y of each pair."""
        return (np.einsum("nhwc,nhwc->n", x, y) - (sum_x * sum_y).sum(axis=1) / pixels) / count
    return moment(a, b, sum_a, sum_b) / np.sqrt(
        (moment(a, a, sum_a, sum_a) + NOISE) * (moment(b, b, sum_b, sum_b) + NOISE))


def best_shift(a: np.ndarray, b: np.ndarray,
               offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For pairs of thumbnails (uint8 or float32), the best correlation over the shifts of `b`
    against `a` that `offsets` (pairs, shifts, 2) lists per pair, and that shift (dy, dx)."""
    best = np.full(len(a), -np.inf, dtype=np.float32)
    where = np.zeros((len(a), 2), dtype=np.int64)
    for start in range(0, len(a), CHUNK):
        part = slice(start, start + CHUNK)
        x, y = (v.astype(np.float32) - v.mean(axis=(1, 2), keepdims=True)
                for v in (a[part], b[part]))
        for dy, dx in np.unique(offsets[part].reshape(-1, 2), axis=0):
            r = correlation(window(x, dy, dx), window(y, -dy, -dx))
            better = (r > best[part]) & (offsets[part] == (dy, dx)).all(axis=2).any(axis=1)
            best[part][better] = r[better]
            where[part][better] = dy, dx
    return best, where


def closest(test: np.ndarray, test_features: np.ndarray, pool: np.ndarray,
            pool_features: np.ndarray, k: int, max_shift: int, same: bool = False) -> dict:
    """For each test thumbnail, the candidate of `pool` that correlates best: its index (-1
    when there is none), the correlation, the shift, whether it is an exact copy, and its feature
    cosine. Candidates are the k nearest by each descriptor (`same` when `pool` is the test set
    itself); they are
    ranked at half the side over shifts of up to half `max_shift`, and the best is aligned at
    the full side within two pixels of twice that shift."""
    test_f, pool_f = unit_rows(test_features), unit_rows(pool_features)
    candidates = np.concatenate([
        nearest(coarse_descriptor(test), coarse_descriptor(pool), k, same),
        nearest(test_f, pool_f, k, same)], axis=1)
    n, per = candidates.shape
    if per == 0:
        return {"index": np.full(n, -1), "correlation": np.zeros(n), "shift": np.zeros((n, 2),
                dtype=np.int64), "exact": np.zeros(n, dtype=bool), "cosine": np.zeros(n)}
    half = max(1, max_shift // 2)
    everywhere = np.array(list(shifts(half)))
    rough, moved = best_shift(block_means(test, test.shape[1] // 2)[np.arange(n).repeat(per)],
                              block_means(pool[candidates.reshape(-1)], pool.shape[1] // 2),
                              np.broadcast_to(everywhere, (n * per, *everywhere.shape)))
    pick = rough.reshape(n, per).argmax(axis=1)
    index = candidates[np.arange(n), pick]
    near = 2 * moved.reshape(n, per, 2)[np.arange(n), pick]
    offsets = np.clip(near[:, None] + np.array(list(shifts(2)))[None], -max_shift, max_shift)
    score, shift = best_shift(test, pool[index], offsets)
    exact = np.abs(test.astype(np.float32) - pool[index]).mean(axis=(1, 2, 3)) <= EXACT
    shift[exact] = 0
    return {"index": index, "correlation": np.where(exact, 1.0, np.minimum(score, 1.0)),
            "shift": shift, "exact": exact, "cosine": (test_f * pool_f[index]).sum(axis=1)}
