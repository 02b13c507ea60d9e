"""The extractor's backbone layers, and its top ones unfrozen for fine-tuning."""

from __future__ import annotations

import keras

from transfer.runtime.errors import UserError

FRONT_LAYERS = ("image", "resize", "preprocess")  # the extractor's layers before the backbone


def backbone_layers(extractor: keras.Model) -> list[keras.layers.Layer]:
    """The extractor's backbone layers in order: no input, resize, preprocess or final pooling."""
    return [layer for layer in extractor.layers[:-1] if layer.name not in FRONT_LAYERS
            and not isinstance(layer, keras.layers.InputLayer)]


def unfreeze_top(extractor: keras.Model, n_layers: int | str) -> list[keras.layers.Layer]:
    """Make the top `n_layers` backbone layers ("all": every one) trainable, except
    BatchNormalization.

    BatchNormalization layers stay non-trainable, which in Keras 3 also runs them in inference
    mode: their moving statistics never change. Returns the top layers (trainable or not).
    """
    layers = backbone_layers(extractor)
    if n_layers == "all":
        n_layers = len(layers)
    if n_layers > len(layers):
        raise UserError(f"finetune.layers={n_layers} is not allowed: {extractor.name} has "
                        f"{len(layers)} backbone layers")
    top = layers[len(layers) - n_layers:]
    extractor.trainable = True
    for layer in extractor.layers:
        layer.trainable = False
    for layer in top:
        layer.trainable = not isinstance(layer, keras.layers.BatchNormalization)
    return top
