"""Layer-wise learning rates: the fine-tuned base's rate falling geometrically with depth.

With `finetune.bottom_rate` r < 1, the lowest fine-tuned layer learns at r times the schedule's
rate and the top one at the full rate, the layers between at r ** (distance from the top /
distance from the top to the bottom), counted over the layers that have weights; the head
learns at the full rate (layer-wise learning-rate decay, Howard & Ruder 2018; Clark et al. 2020).
The decoupled weight decay stays at the schedule's rate for every variable, as Keras applies it.
Measured on three photo sets: no gain (bench/results/tuning.md), so the default is 1 (off).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras

if TYPE_CHECKING:
    import tensorflow as tf


def variable_scales(model: keras.Model, base_layers: list[keras.layers.Layer],
                    bottom_rate: float) -> list[float]:
    """Each of `model.trainable_variables`' factor on the rate: 1 outside `base_layers` (the
    fine-tuned base, bottom first), `bottom_rate` at its lowest layer with weights, rising
    geometrically to 1 at its top one."""
    weighted = [layer for layer in base_layers if layer.trainable_weights]
    last = max(1, len(weighted) - 1)
    factor = {id(v): bottom_rate ** ((last - i) / last)
              for i, layer in enumerate(weighted) for v in layer.trainable_weights}
    return [factor.get(id(v), 1.0) for v in model.trainable_variables]


class LayerwiseAdamW(keras.optimizers.AdamW):
    """AdamW whose step on each trainable variable is scaled by its own factor (`scales`, in
    the order of the model's `trainable_variables`, which `build` receives)."""

    def __init__(self, scales: list[float], **kwargs) -> None:
        """AdamW(**kwargs), each variable's rate times its entry of `scales`."""
        super().__init__(**kwargs)
        self.scales = scales

    def update_step(self, gradient: tf.Tensor, variable: tf.Variable,
                    learning_rate: tf.Tensor) -> None:
        """AdamW's update at this variable's share of `learning_rate`."""
        scale = self.scales[self._get_variable_index(variable)]
        super().update_step(gradient, variable, learning_rate * scale)
