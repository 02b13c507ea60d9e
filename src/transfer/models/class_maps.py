"""Where the model looks: Grad-CAM class-activation maps (Selvaraju et al., 2017).

For an image and a class, the gradient of the class's logit with respect to a feature map of
the base, averaged over its positions, weighs each channel of that map; the map is the
positive part of the weighted sum, scaled to a maximum of 1. The map is the base's deepest one
at least `MIN_SIDE` positions wide: its last at a photo's own size (7 x 7 at 224 px), an
earlier block's for thumbnails grown to 128 px, whose last map (4 x 4) is one blob. Computed
on the model as it was fine-tuned (the unmirrored image: the branch of the flip average that
sees it as it is).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from transfer.models.heads import CLASSIFIER

MIN_SIDE = 7  # positions on a side of the mapped feature map at least


def mapped_layer(model: keras.Model) -> keras.layers.Layer:
    """The deepest layer with a spatial output (batch, height, width, channels) at least
    `MIN_SIDE` positions on a side, padding aside (the first spatial layer if none is)."""
    spatial = [layer for layer in model.layers if len(layer.output.shape) == 4
               and not isinstance(layer, keras.layers.ZeroPadding2D)]
    return next((layer for layer in reversed(spatial)
                 if min(layer.output.shape[1:3]) >= MIN_SIDE), spatial[0])


def grad_cam(model: keras.Model, layer: keras.layers.Layer, images: np.ndarray,
             classes: np.ndarray) -> np.ndarray:
    """Maps (n, height, width) in [0, 1] over `layer`'s output (`mapped_layer`), one per image,
    for its class in `classes`."""
    head = model.get_layer("head")
    pooled = model.layers[model.layers.index(head) - 1]
    probe = keras.Model(model.input, [layer.output, pooled.output])
    last = head.get_layer(CLASSIFIER)
    with tf.GradientTape() as tape:
        features, x = probe(tf.convert_to_tensor(images), training=False)
        for layer in head.layers[:-1]:
            x = layer(x, training=False)
        logits = tf.matmul(tf.cast(x, tf.float32), last.kernel) + last.bias
        chosen = tf.gather(logits, tf.convert_to_tensor(classes), axis=1, batch_dims=1)
    grads = tf.cast(tape.gradient(chosen, features), tf.float32)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    maps = tf.nn.relu(tf.reduce_sum(weights * tf.cast(features, tf.float32), axis=-1)).numpy()
    return maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)
