"""The paper's checks by hand: calibration error, the fitted temperature, and near-copies found
by aligned pixels."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import moved

from transfer.data import near_copies
from transfer.models.calibration import (
    calibration_error,
    fit_temperature,
    nll,
    reliability,
    tempered,
)


def test_calibration_error_by_hand():
    """Two bins used of 15: 0.95 (bin 14) right once in two, 0.55 (bin 8) right twice; each
    bin is off by 0.45 and holds half the predictions, so the error is 0.45. A confidence of
    exactly 1 counts in the last bin."""
    confidence = np.array([0.95, 0.95, 0.55, 0.55])
    correct = np.array([True, False, True, True])
    assert calibration_error(confidence, correct) == pytest.approx(0.45)
    count, accuracy, mean = reliability(confidence, correct)
    assert count[14] == 2 and count[8] == 2 and count.sum() == 4
    assert accuracy[14] == 0.5 and accuracy[8] == 1.0 and mean[14] == pytest.approx(0.95)
    assert reliability(np.array([1.0]), np.array([True]))[0][-1] == 1
    assert calibration_error(np.array([0.7, 0.7]), np.array([True, False])) == pytest.approx(0.2)


def test_temperature_fitted_by_hand():
    """Every image gets (0.9, 0.1) and 3 in 4 are of class 0: the NLL is least when the tempered
    probability of class 0 is 0.75, 1 / (1 + (1/9)^(1/T)) = 3/4, so 1/T = ln 3 / ln 9: T = 2.
    Scaling keeps every row's argmax and lowers the NLL."""
    probs = np.tile([[0.9, 0.1]], (400, 1))
    labels = np.array([0, 0, 0, 1] * 100)
    temperature = fit_temperature(probs, labels)
    assert temperature == pytest.approx(2.0, abs=1e-3)
    assert tempered(probs, temperature)[0, 0] == pytest.approx(0.75, abs=1e-4)
    assert nll(tempered(probs, temperature), labels) < nll(probs, labels)
    rng = np.random.default_rng(0)
    random = rng.dirichlet(np.ones(10) * 0.3, size=200)
    for t in (0.3, 1.0, 4.0):
        assert (tempered(random, t).argmax(axis=1) == random.argmax(axis=1)).all()
    np.testing.assert_allclose(tempered(random, 1.0), random, rtol=1e-6, atol=1e-9)


def smooth_images(n: int, side: int, seed: int) -> np.ndarray:
    """`n` uint8 images of smooth random colour blobs (4x4 noise upsampled), none alike."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (n, 4, 4, 3))
    return np.repeat(np.repeat(coarse, side // 4, axis=1), side // 4, axis=2).astype(np.uint8)


def test_planted_copies_are_found_and_nothing_else():
    """Among smooth random images, a test image that is an exact copy of pool image 5 and one
    that is pool image 17 moved by (3, -2) pixels and brightened by 30 are matched to them
    (exact, then near at that shift); no other test image correlates near a copy."""
    pool = smooth_images(60, 32, seed=1)
    test = smooth_images(20, 32, seed=2)
    test[3] = pool[5]
    test[11] = moved(pool[17], 3, -2, 30)
    features = {name: near_copies.coarse_descriptor(x) for name, x in
                (("pool", pool), ("test", test))}  # stand-ins for the base's features
    found = near_copies.closest(near_copies.thumbnails(test), features["test"],
                                near_copies.thumbnails(pool), features["pool"], k=3,
                                max_shift=3)
    assert found["index"][3] == 5 and found["exact"][3] and found["correlation"][3] == 1.0
    assert found["index"][11] == 17 and not found["exact"][11]
    assert found["correlation"][11] > 0.95 and tuple(found["shift"][11]) == (3, -2)
    others = np.setdiff1d(np.arange(20), [3, 11])
    assert found["correlation"][others].max() < 0.8 and not found["exact"][others].any()
    within = near_copies.closest(test, features["test"], test, features["test"], k=3,
                                 max_shift=3, same=True)
    assert (within["index"] != np.arange(20)).all()  # no image is its own neighbour


def test_edge_cases_of_the_checks():
    """A validation split with no mistake keeps T = 1 (the NLL would only fall as T does); two
    identical flat images are an exact copy at shift 0, though every shift correlates alike; a
    test set of one image has no other test image to match, and nothing breaks."""
    probs = np.array([[0.8, 0.2], [0.3, 0.7]])
    assert fit_temperature(probs, np.array([0, 1])) == 1.0
    flat = np.full((2, 16, 16, 3), 90, dtype=np.uint8)
    found = near_copies.closest(flat[:1], np.ones((1, 4)), flat[1:], np.ones((1, 4)), k=3,
                                max_shift=3)
    assert found["exact"][0] and tuple(found["shift"][0]) == (0, 0)
    alone = near_copies.closest(flat[:1], np.ones((1, 4)), flat[:1], np.ones((1, 4)), k=3,
                                max_shift=3, same=True)
    assert alone["index"][0] == -1 and not alone["exact"][0]
    assert near_copies.thumbnails(flat[:0]).shape == (0, 16, 16, 3)
