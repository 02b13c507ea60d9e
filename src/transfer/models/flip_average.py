"""Test-time augmentation inside the exported model: class probabilities averaged over each
image and its mirror image.

Built from Keras layers only, so `keras.models.load_model` reads the `.keras` and the `.h5`
file with nothing registered: the mirror is a fixed `Dense` layer whose kernel reverses the
width axis (exact: each output is one input times 1), between two `Permute` layers.
"""

from __future__ import annotations

import keras
import numpy as np


def mirror(height: int, width: int, channels: int) -> keras.Sequential:
    """A fixed layer stack that flips (height, width, channels) images left to right."""
    reverse = keras.layers.Dense(width, use_bias=False, trainable=False, name="reverse_width")
    stack = keras.Sequential([keras.Input((height, width, channels)),
                              keras.layers.Permute((1, 3, 2)), reverse,
                              keras.layers.Permute((1, 3, 2))], name="mirror")
    reverse.set_weights([np.eye(width, dtype=np.float32)[::-1]])
    return stack


def branches(model: keras.Model) -> tuple[keras.KerasTensor, ...]:
    """A new image input, and `model`'s output on it and on its mirror.

    One flat graph whose layers run on both branches (a nested model's weights do not survive
    `.h5`): two clones of `model`'s graph on the same input share its layers; the second's
    first layer is a copy of `model`'s behind the mirror (a shared layer nested in it would
    not survive `.keras`)."""
    height, width, channels = model.input.shape[1:]
    image = keras.Input((height, width, channels), name="image")
    first = model.layers[1]
    copy = first.__class__.from_config(first.get_config())
    behind_mirror = keras.Sequential([mirror(height, width, channels), copy],
                                     name=f"mirrored_{first.name}")
    copy.set_weights(first.get_weights())

    def branch(mirrored: bool) -> keras.KerasTensor:
        """`model`'s layers on `image`, behind the mirror if `mirrored`."""
        return keras.models.clone_model(model, input_tensors=image, clone_function=lambda layer: (
            behind_mirror if mirrored and layer is first else layer)).output

    return image, branch(False), branch(True)


def both_views(model: keras.Model) -> keras.Model:
    """`model` whose output is its output on the images and on their mirrors side by side
    (batch, 2 x classes): one pass gives the plain and the flip-averaged probabilities."""
    image, plain, mirrored = branches(model)
    return keras.Model(image, keras.layers.Concatenate(name="both_views")([plain, mirrored]),
                       name=f"{model.name}_both_views")


def flip_averaged(model: keras.Model) -> keras.Model:
    """`model` whose output is the mean of its outputs on the images and on their mirrors."""
    image, plain, mirrored = branches(model)
    probs = keras.layers.Average(name="flip_average")([plain, mirrored])
    return keras.Model(image, probs, name=f"{model.name}_flip_averaged")
