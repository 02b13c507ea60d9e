"""Layer-wise learning rates: the factors by depth, and AdamW's step scaled by them."""

import keras
import numpy as np
import pytest

from transfer.training.layer_rates import LayerwiseAdamW, variable_scales


def stack() -> tuple[keras.Model, list[keras.layers.Layer]]:
    """Three weighted 'base' layers (a weightless one between) under a 'head'."""
    base = [keras.layers.Dense(4, name="bottom"), keras.layers.ReLU(),
            keras.layers.Dense(4, name="middle"), keras.layers.Dense(4, name="top")]
    x = inputs = keras.Input((4,))
    for layer in base:
        x = layer(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x)), base


def test_rates_fall_geometrically_from_the_top_of_the_base_to_its_bottom() -> None:
    model, base = stack()
    scales = dict(zip((v.path for v in model.trainable_variables),
                      variable_scales(model, base, 0.01), strict=True))
    assert scales == pytest.approx({"bottom/kernel": 0.01, "bottom/bias": 0.01,
                                    "middle/kernel": 0.1, "middle/bias": 0.1,
                                    "top/kernel": 1.0, "top/bias": 1.0,
                                    "head/kernel": 1.0, "head/bias": 1.0})
    assert variable_scales(model, base, 1.0) == [1.0] * 8


def test_each_variable_steps_at_its_share_of_the_rate() -> None:
    model, base = stack()
    scales = variable_scales(model, base, 0.01)
    optimizer = LayerwiseAdamW(scales, learning_rate=1e-3, weight_decay=0.0)
    optimizer.build(model.trainable_variables)
    before = [v.numpy() for v in model.trainable_variables]
    grads = [np.ones(v.shape, "float32") for v in model.trainable_variables]
    optimizer.apply(grads, model.trainable_variables)
    for scale, old, v in zip(scales, before, model.trainable_variables, strict=True):
        # Adam's first step moves every weight by the rate (the gradient's sign, normalised)
        np.testing.assert_allclose(old - v.numpy(), 1e-3 * scale, rtol=0, atol=5e-7)
