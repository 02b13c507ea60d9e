"""Keras's private EfficientNet builder, which the Lite models need, still builds Keras's own
EfficientNetB0 from the default block arguments: a Keras release that moves or changes either
fails here, not in a stage."""

from __future__ import annotations

import keras

from transfer.models.keras_internals import DEFAULT_BLOCKS_ARGS, EfficientNet


def test_the_private_builder_builds_the_public_b0():
    """The builder with DEFAULT_BLOCKS_ARGS (seven blocks of the keys Lite rescales) and the
    keywords Lite passes gives keras.applications.EfficientNetB0's layers and weight shapes."""
    assert len(DEFAULT_BLOCKS_ARGS) == 7
    assert all({"filters_in", "filters_out", "repeats", "se_ratio"} <= set(block)
               for block in DEFAULT_BLOCKS_ARGS)
    private = EfficientNet(1.0, 1.0, 224, activation="swish", blocks_args=DEFAULT_BLOCKS_ARGS,
                           name="efficientnetb0", include_top=False, weights=None,
                           input_shape=(64, 64, 3))
    public = keras.applications.EfficientNetB0(include_top=False, weights=None,
                                               input_shape=(64, 64, 3))
    assert [type(layer) for layer in private.layers] == [type(layer) for layer in public.layers]
    assert [w.shape for w in private.weights] == [w.shape for w in public.weights]
