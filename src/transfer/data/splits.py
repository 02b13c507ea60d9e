"""Seeded stratified splits: a share of each class, validation held out and topped up."""

from __future__ import annotations

import numpy as np


def stratified_subset(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a seeded share `fraction` of each class (at least one per class)."""
    keep = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        keep.append(members[: max(1, round(len(members) * fraction))])
    return np.sort(np.concatenate(keep))


def stratified_split(labels: np.ndarray, val_split: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split positions 0..n-1 into sorted (train, val), taking `val_split` of every class for val.

    Each class keeps at least one training example; a class of one example has none in val.
    """
    train, val = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(max(1, round(len(members) * val_split)), len(members) - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def top_up(labels: np.ndarray, train: np.ndarray, val: np.ndarray, unused: np.ndarray,
           minimum: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) positions with at least `minimum` validation images per class where
    the data allows: first from `unused` (images outside `data.fraction`), then moved from
    `train` as long as half of the class's training images stay."""
    moved = []
    for c in np.unique(labels):
        need = minimum - int(np.sum(labels[val] == c))
        if need <= 0:
            continue
        spare = rng.permutation(unused[labels[unused] == c])[:need]
        own = train[labels[train] == c]
        moved.append(np.concatenate([spare, rng.permutation(own)[:min(need - len(spare),
                                                                         len(own) // 2)]]))
    if not moved:
        return train, val
    moved = np.concatenate(moved).astype(np.int64)
    return np.setdiff1d(train, moved), np.union1d(val, moved)
