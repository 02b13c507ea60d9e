"""The classification head that sits on the frozen base's pooled features."""

from __future__ import annotations

from typing import Protocol

import keras

CLASSIFIER = "predictions"  # the head's softmax layer, kept float32 under mixed precision


class HeadParams(Protocol):
    """What the head is built from (`train`'s section has it)."""

    dropout: float
    hidden_units: int


def build_head(feature_dim: int, num_classes: int, p: HeadParams) -> keras.Sequential:
    """Dropout, an optional hidden ReLU layer, and a softmax classifier."""
    layers = [keras.Input((feature_dim,)), keras.layers.Dropout(p.dropout)]
    if p.hidden_units:
        layers += [keras.layers.Dense(p.hidden_units, activation="relu"),
                   keras.layers.Dropout(p.dropout)]
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name=CLASSIFIER))
    return keras.Sequential(layers, name="head")
