"""Progressive resizing: fine-tuning epochs at input sizes that grow to the model's own.

Early epochs at a small size cost fewer pixels per image; the last ones run at
`model.input_size`, the size the saved model resizes to (FFCV's ResNet recipes, EfficientNetV2's
progressive learning). The training model is the extractor without its Resizing layer, sharing
its layers (and so its weights); `transfer.training.batches.Batches` resizes each batch
instead. Keras loads only when a model is handled: the report reads the schedule without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

STEP = 8  # sizes are rounded to multiples of this


def schedule(start: int, end: int, epochs: int) -> list[int]:
    """The input size of each of `epochs` epochs: linear from `start` to `end`, rounded to
    multiples of STEP, the last exactly `end`."""
    if epochs <= 1:
        return [end]
    sizes = [STEP * round((start + (end - start) * i / (epochs - 1)) / STEP)
             for i in range(epochs - 1)]
    return [*sizes, end]


def input_size(extractor: keras.Model) -> int:
    """The size the extractor resizes its images to (their own size if it does not)."""
    names = [layer.name for layer in extractor.layers]
    layer = extractor.get_layer("resize") if "resize" in names else extractor.layers[0]
    return int(layer.output.shape[1])


def any_size(extractor: keras.Model) -> keras.Model:
    """`extractor` without its Resizing layer, for images of any size: the same layer objects,
    so training it trains `extractor`."""
    def same_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        """The layer itself; an identity in place of the Resizing layer."""
        return keras.layers.Identity(name="resize") if layer.name == "resize" else layer

    import keras

    image = keras.Input((None, None, 3), name="image")
    return keras.models.clone_model(extractor, input_tensors=image, clone_function=same_layer)
