"""Keras applications built as frozen feature extractors.

The extractor is one flat functional model that takes raw RGB images in 0-255:

    image -> Resizing(input_size) -> preprocess -> backbone -> global average pool

`preprocess` reproduces the family's own `preprocess_input` with a fixed, non-trainable
built-in `Dense(3)` acting on the channel axis (a per-channel affine map, with the RGB->BGR
swap of the "caffe" families folded into its kernel). Built-in layers only, so the saved
`.keras` and `.h5` files load with plain `keras.models.load_model`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import keras
import numpy as np

from transfer.models import efficientnet_lite
from transfer.params.catalogue import LITE, check_backbone, family, preprocessing
from transfer.runtime.downloads import downloading
from transfer.runtime.errors import UserError

_TORCH_MEAN, _TORCH_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])


def constructor(backbone: str) -> Callable[..., keras.Model]:
    """The model constructor of a known backbone, with the keras.applications signature."""
    module = efficientnet_lite if family(backbone) == LITE else keras.applications
    return getattr(module, backbone)


def preprocessing_affine(mode: str | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Kernel (3x3) and bias (3,) with `rgb @ kernel + bias == preprocess_input(rgb)`."""
    if mode is None:
        return None
    if mode == "tf":
        return np.eye(3) / 127.5, -np.ones(3)
    if mode == "torch":
        return np.diag(1 / (255 * _TORCH_STD)), -_TORCH_MEAN / _TORCH_STD
    if mode == "caffe":
        return np.eye(3)[::-1], -_CAFFE_MEAN_BGR
    raise ValueError(f"unknown preprocessing mode {mode!r}")


def build_extractor(backbone: str, weights: str, input_size: int, image_size: int,
                    cut_layer: str | None = None) -> keras.Model:
    """The frozen feature extractor for raw (image_size, image_size, 3) images in 0-255."""
    check_backbone(backbone)
    image = keras.Input((image_size, image_size, 3), name="image")
    x = image
    if input_size != image_size:
        x = keras.layers.Resizing(input_size, input_size, name="resize")(x)
    affine = preprocessing_affine(preprocessing(backbone))
    if affine is not None:
        preprocess = keras.layers.Dense(3, name="preprocess", trainable=False)
        x = preprocess(x)
        preprocess.set_weights([a.astype("float32") for a in affine])
    try:
        with downloading(f"the ImageNet weights of {backbone}",
                         "model.backbone=EfficientNetLite0 (its weights install with pip), or "
                         "model.weights set to a weights file"):
            base = constructor(backbone)(
                include_top=False, weights=None if weights == "none" else weights,
                input_tensor=x, pooling=None if cut_layer else "avg")
    except ValueError as e:
        raise UserError(f"model.input_size={input_size} does not fit {backbone}: {e}") from e
    if cut_layer:
        names = [layer.name for layer in base.layers]
        if cut_layer not in names:
            close = difflib.get_close_matches(cut_layer, names, n=3)
            raise UserError(f"model.cut_layer={cut_layer!r} is not a layer of {backbone}; "
                            f"close names: {', '.join(close) or 'none'}")
        pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(
            base.get_layer(cut_layer).output)
        base = keras.Model(image, pooled)
    base.trainable = False
    return keras.Model(image, base.output, name=f"{backbone}_extractor")
