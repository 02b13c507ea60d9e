"""Calibration of class probabilities: temperature scaling and the expected calibration error.

Temperature scaling (Guo et al., 2017) divides the log-probabilities by one scalar T fitted on
the validation split and takes their softmax again: the class order, and so the argmax and the
accuracy, stay as they are; T > 1 softens over-confident probabilities. The model's outputs
here are probabilities (averaged over flips, so no logits), so T applies to their logarithm.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

BINS = 15  # equal-width confidence bins of the calibration error and the reliability diagram
TINY = 1e-30  # floor of a probability before its logarithm


def tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(probs) / temperature), row by row."""
    z = np.log(np.maximum(probs, TINY)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true classes."""
    return float(-np.log(np.maximum(probs[np.arange(len(labels)), labels], TINY)).mean())


def fit_temperature(probs: np.ndarray, labels: np.ndarray, lo: float = 0.05,
                    hi: float = 20.0) -> float:
    """The temperature in [lo, hi] that minimises the NLL of `tempered(probs, T)`, searched on
    log T (the NLL is convex in 1 / T, so it has one minimum); 1 when every prediction is
    right, where the NLL only falls as T does and no temperature is calibrated."""
    if (probs.argmax(axis=1) == labels).all():
        return 1.0
    found = minimize_scalar(lambda log_t: nll(tempered(probs, float(np.exp(log_t))), labels),
                            bounds=(np.log(lo), np.log(hi)), method="bounded",
                            options={"xatol": 1e-6})
    return float(np.exp(found.x))


def reliability(confidence: np.ndarray, correct: np.ndarray,
                bins: int = BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width confidence bin: its number of predictions, their accuracy and their mean
    confidence (0 where a bin is empty). A confidence of exactly 1 falls in the last bin."""
    which = np.minimum((np.asarray(confidence) * bins).astype(int), bins - 1)
    count = np.bincount(which, minlength=bins)
    hits = np.bincount(which, weights=np.asarray(correct, dtype=float), minlength=bins)
    sure = np.bincount(which, weights=np.asarray(confidence, dtype=float), minlength=bins)
    safe = np.maximum(count, 1)
    return count, hits / safe, sure / safe


def calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: the mean over bins of |accuracy - confidence|, weighted by
    each bin's share of the predictions."""
    count, accuracy, mean_confidence = reliability(confidence, correct, bins)
    return float((count * np.abs(accuracy - mean_confidence)).sum() / max(count.sum(), 1))


def summary(val: np.ndarray, val_labels: np.ndarray, test: np.ndarray,
            test_labels: np.ndarray) -> dict:
    """The temperature fitted on the validation probabilities, and the test set's calibration
    error and NLL before and after it."""
    temperature = fit_temperature(val, val_labels)
    scaled = tempered(test, temperature)
    correct = test.argmax(axis=1) == test_labels
    return {"temperature": round(temperature, 4),
            "ece": calibration_error(test.max(axis=1), correct),
            "ece_calibrated": calibration_error(scaled.max(axis=1), correct),
            "nll": nll(test, test_labels), "nll_calibrated": nll(scaled, test_labels)}
