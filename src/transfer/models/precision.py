"""Keras dtype policies: a model copied to compute in (b)float16, its classifier in float32.

`features.precision` and `finetune.precision` name one of PRECISIONS (see params); weights
stay float32 under every policy, and saved models are float32.
"""

from __future__ import annotations

import keras

from transfer.models.heads import CLASSIFIER


def _retype(config: object, precision: str) -> object:
    """`config` with every layer's dtype policy set to `precision`, except the classifier's."""
    if isinstance(config, list):
        return [_retype(c, precision) for c in config]
    if not isinstance(config, dict):
        return config
    if config.get("class_name") == "DTypePolicy":
        return keras.dtype_policies.serialize(keras.dtype_policies.get(precision))
    if config.get("config", {}).get("name") == CLASSIFIER:
        return config
    return {key: _retype(value, precision) for key, value in config.items()}


def in_precision(model: keras.Model, precision: str) -> keras.Model:
    """`model` computing in the Keras dtype policy `precision`: a copy with the same weights,
    or `model` itself when nothing changes.

    The classifier layer stays float32 so the softmax and the loss keep full precision, as
    the Keras mixed-precision guide advises. Weights are float32 under every policy.
    """
    config = model.get_config()
    retyped = _retype(config, precision)
    if retyped == config:
        return model
    copy = model.__class__.from_config(retyped)
    copy.set_weights(model.get_weights())
    return copy
