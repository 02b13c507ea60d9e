"""The exported model with temperature scaling: softmax(log(p) / T) of its probabilities p.

Built from Keras layers only, so `keras.models.load_model` reads it with nothing registered.
The head's softmax layer is copied without its activation to give logits z; log p is then
`log_softmax(z)`, and with flip averaging, where p is the mean of two softmaxes, the log of
their sum: l1 + softplus(l2 - l1) (log 2 apart from log p, which the softmax ignores).
"""

from __future__ import annotations

import keras

from transfer.models.flip_average import branches
from transfer.models.heads import CLASSIFIER

LAYER = "temperature"  # the Rescaling layer by 1 / T: how `predict` finds the temperature


def with_logits(model: keras.Model) -> keras.Model:
    """`model` with its head's last layer copied without the softmax: it outputs logits."""
    head = model.get_layer("head")
    last = head.get_layer(CLASSIFIER)
    dense = keras.layers.Dense(last.units, name="logits")
    linear = keras.Sequential([keras.Input(head.input.shape[1:]), *head.layers[:-1], dense],
                              name="head_logits")
    dense.set_weights(last.get_weights())
    return keras.models.clone_model(model, clone_function=lambda layer: (
        linear if layer is head else layer))


def temperature_scaled(model: keras.Model, temperature: float, flip: bool) -> keras.Model:
    """`model` (with its probabilities averaged over flips if `flip`) tempered by
    `temperature`: the same argmax, softer or sharper probabilities."""
    logits = with_logits(model)
    if flip:
        image, plain, mirrored = branches(logits)
        first, second = (keras.layers.Activation("log_softmax")(z) for z in (plain, mirrored))
        log_p = keras.layers.Add()([first, keras.layers.Activation("softplus")(
            keras.layers.Subtract()([second, first]))])
    else:
        image, log_p = logits.input, logits.output
    scaled = keras.layers.Rescaling(1 / temperature, name=LAYER)(log_p)
    probs = keras.layers.Activation("softmax", name="calibrated")(scaled)
    return keras.Model(image, probs, name=f"{model.name}_calibrated")
