"""CIFAR-10: its class names, and the assignment's `preprocess_data` for the saved model."""

from __future__ import annotations

import numpy as np

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """One-hot encode integer labels as float32."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels).reshape(-1)]


def preprocess_data(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prepare CIFAR-10 arrays for the saved model: X (m, 32, 32, 3) in 0-255, Y (m,) labels.

    Returns X_p as float32 pixels (the model resizes and normalises inside itself, so nothing is
    upscaled in memory) and Y_p one-hot over the 10 classes.
    """
    X = np.asarray(X)
    if X.ndim != 4 or X.shape[-1] != 3:
        raise ValueError(f"X must have shape (m, height, width, 3), got {X.shape}")
    Y = np.asarray(Y).reshape(-1)
    if len(Y) != len(X):
        raise ValueError(f"X has {len(X)} images but Y has {len(Y)} labels")
    return X.astype(np.float32), one_hot(Y, len(CLASSES))
