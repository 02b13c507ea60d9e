"""Typed, validated view of `params.yaml`: one frozen dataclass per section, and the values
each choice allows. Loads without TensorFlow: every stage reads it, the report included."""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from transfer.applications import check_backbone
from transfer.paths import PARAMS
from transfer.runtime import ParamError

# PyYAML reads `1e-05` (how `dvc exp run -S x=0.00001` writes params.yaml) as a string: YAML 1.1
# floats need a dot. Such strings are taken as the numbers they are.
FLOAT_WITHOUT_DOT = re.compile(r"[-+]?[0-9]+[eE][-+]?[0-9]+")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")  # Keras dtype policies
STRATEGIES = ("auto", "mirrored", "multiworker")  # see transfer.distribute
ENGINES = ("auto", "keras", "openvino")  # see transfer.engines
HELD_OUT = ("test", "val", "valid", "validation")  # folders beside train/ that can be the test set
RESIZE_MODES = ("crop", "squash")  # how a non-square image becomes a square (transfer.data)


def _require(ok: bool, key: str, value: object, allowed: str) -> None:
    """Raise a one-line ParamError naming `key`, its `value` and what is `allowed`."""
    if not ok:
        raise ParamError(f"{key}={value!r} is not allowed: {allowed}")


def _check_precision(section: str, precision: str) -> None:
    """Raise a ParamError unless `precision` is one of the Keras dtype policies offered."""
    _require(precision in PRECISIONS, f"{section}.precision", precision,
             " | ".join(PRECISIONS))


def _check_engine(section: str, engine: str) -> None:
    """Raise a ParamError unless `engine` is one of the inference engines offered."""
    _require(engine in ENGINES, f"{section}.engine", engine, " | ".join(ENGINES))


def _auto_or(value: object, ok: Callable[[Any], bool], key: str, allowed: str) -> None:
    """Raise a ParamError unless `value` is 'auto' or an explicit value for which `ok` holds."""
    _require(value == "auto" or not isinstance(value, str) and ok(value), key, value,
             f"'auto' (transfer.recipe) or {allowed}")


def _check_strategy(section: str, strategy: str) -> None:
    """Raise a ParamError unless `strategy` is one of the distribution strategies offered."""
    _require(strategy in STRATEGIES, f"{section}.strategy", strategy, " | ".join(STRATEGIES))


@dataclass(frozen=True)
class DataParams:
    """`data`: where the images come from and how the training set is split."""

    source: str = "cifar10"
    path: str = ""
    name: str = ""
    test_folder: str = ""
    test_split: float = 0.2
    image_size: int | None = None
    resize: str = "crop"
    fraction: float = 1.0
    val_split: float = 0.1
    val_min: int = 20
    skip_corrupt: bool = False

    def check(self) -> None:
        """Validate ranges and the combination of source and path."""
        _require(self.source in ("cifar10", "folder"), "data.source", self.source,
                 "'cifar10' or 'folder'")
        _require(self.source == "cifar10" or bool(self.path), "data.path", self.path,
                 "a directory, .tar.gz or .zip when data.source is 'folder'")
        if self.source == "folder":
            _require(Path(self.path).exists(), "data.path", self.path, "a path that exists")
        _require(self.test_folder in ("", *HELD_OUT), "data.test_folder", self.test_folder,
                 "'' (found by itself) or one of " + ", ".join(HELD_OUT))
        _require(0 < self.test_split < 1, "data.test_split", self.test_split,
                 "a number in (0, 1)")
        _require(self.image_size is None or 8 <= self.image_size <= 1024, "data.image_size",
                 self.image_size, "null (from the data) or an integer in [8, 1024]")
        _require(self.resize in RESIZE_MODES, "data.resize", self.resize,
                 " | ".join(RESIZE_MODES))
        _require(0 < self.fraction <= 1, "data.fraction", self.fraction, "a number in (0, 1]")
        _require(0 < self.val_split < 1, "data.val_split", self.val_split, "a number in (0, 1)")
        _require(self.val_min >= 0, "data.val_min", self.val_min,
                 "an integer >= 0 (validation images per class at least; 0: no minimum)")


@dataclass(frozen=True)
class ModelParams:
    """`model`: the Keras application used as the frozen base."""

    backbone: str = "EfficientNetLite0"
    input_size: int | str = "auto"
    weights: str = "imagenet"
    cut_layer: str | None = None

    def check(self) -> None:
        """Validate the backbone name, input size and weights (the cut layer is checked when the
        base is built, at the start of `features`)."""
        check_backbone(self.backbone)
        _auto_or(self.input_size, lambda v: isinstance(v, int) and 32 <= v <= 1024,
                 "model.input_size", "an integer in [32, 1024]")
        _require(self.weights in ("imagenet", "none") or Path(self.weights).is_file(),
                 "model.weights", self.weights, "'imagenet', 'none' or an existing weights file")


@dataclass(frozen=True)
class FeaturesParams:
    """`features`: how the frozen base is run over the images."""

    batch_size: int = 64
    precision: str = "float32"
    jit_compile: bool = False
    engine: str = "auto"

    def check(self) -> None:
        """Validate the batch size, precision and engine."""
        _require(self.batch_size >= 1, "features.batch_size", self.batch_size, "an integer >= 1")
        _check_precision("features", self.precision)
        _check_engine("features", self.engine)


@dataclass(frozen=True)
class TrainParams:
    """`train`: the classification head fitted on cached features."""

    epochs: int = 20
    batch_size: int | str = "auto"
    learning_rate: float = 1e-3
    dropout: float = 0.2
    hidden_units: int = 0
    patience: int = 3
    strategy: str = "auto"

    def check(self) -> None:
        """Validate counts and rates."""
        _require(self.epochs >= 1, "train.epochs", self.epochs, "an integer >= 1")
        _auto_or(self.batch_size, lambda v: isinstance(v, int) and v >= 1, "train.batch_size",
                 "an integer >= 1")
        _require(self.learning_rate > 0, "train.learning_rate", self.learning_rate, "a number > 0")
        _require(0 <= self.dropout < 1, "train.dropout", self.dropout, "a number in [0, 1)")
        _require(self.hidden_units >= 0, "train.hidden_units", self.hidden_units,
                 "an integer >= 0 (0: no hidden layer)")
        _require(self.patience >= 1, "train.patience", self.patience, "an integer >= 1")
        _check_strategy("train", self.strategy)


@dataclass(frozen=True)
class AugmentParams:
    """`finetune.augment`: Keras preprocessing layers applied while fine-tuning."""

    flip: bool = True
    rotation: float | str = "auto"
    zoom: float | str = "auto"
    translation: float = 0.0

    def check(self) -> None:
        """Validate the augmentation factors."""
        for name in ("rotation", "zoom"):
            value = getattr(self, name)
            _auto_or(value, lambda v: 0 <= v < 1, f"finetune.augment.{name}", "a number in [0, 1)")
        _require(0 <= self.translation < 1, "finetune.augment.translation", self.translation,
                 "a number in [0, 1)")

    @property
    def flip_only(self) -> bool:
        """True when no augmentation other than a horizontal flip is asked for."""
        return self.rotation == self.zoom == self.translation == 0


@dataclass(frozen=True)
class FinetuneParams:
    """`finetune`: the top layers of the base (or all of it) unfrozen and trained with the head."""

    layers: int | str = "all"
    epochs: int = 5
    batch_size: int | str = "auto"
    learning_rate: float | str = "auto"
    weight_decay: float = 0.05
    warmup: float = 0.05
    label_smoothing: float = 0.0
    start_size: int | None = None
    precision: str = "float32"
    jit_compile: bool = False
    strategy: str = "auto"
    augment: AugmentParams = field(default_factory=AugmentParams)

    def check(self) -> None:
        """Validate counts and rates."""
        _require(self.layers == "all" or isinstance(self.layers, int) and self.layers >= 0,
                 "finetune.layers", self.layers, "'all' or an integer >= 0 (0: skip)")
        _require(self.epochs >= 0, "finetune.epochs", self.epochs, "an integer >= 0")
        _auto_or(self.batch_size, lambda v: isinstance(v, int) and v >= 1, "finetune.batch_size",
                 "an integer >= 1")
        _auto_or(self.learning_rate, lambda v: v > 0, "finetune.learning_rate", "a number > 0")
        _require(self.weight_decay >= 0, "finetune.weight_decay", self.weight_decay,
                 "a number >= 0")
        _require(0 <= self.warmup < 1, "finetune.warmup", self.warmup, "a number in [0, 1)")
        _require(0 <= self.label_smoothing < 1, "finetune.label_smoothing", self.label_smoothing,
                 "a number in [0, 1)")
        _require(self.start_size is None or self.start_size >= 32, "finetune.start_size",
                 self.start_size, "null (model.input_size throughout) or an integer >= 32")
        _check_precision("finetune", self.precision)
        _check_strategy("finetune", self.strategy)
        self.augment.check()


@dataclass(frozen=True)
class EvaluateParams:
    """`evaluate`: test-set scoring of the exported model."""

    batch_size: int = 128
    top_k: int = 3
    engine: str = "auto"
    flip: bool = True

    def check(self) -> None:
        """Validate the batch size, k and engine."""
        _require(self.batch_size >= 1, "evaluate.batch_size", self.batch_size, "an integer >= 1")
        _require(self.top_k >= 1, "evaluate.top_k", self.top_k, "an integer >= 1")
        _check_engine("evaluate", self.engine)


@dataclass(frozen=True)
class ReportParams:
    """`report`: the paper's front matter and the accuracy target it is judged against."""

    title: str = ""
    author: str = "Anonymous"
    affiliation: str = ""
    date: str = ""
    target_accuracy: float = 0.87
    examples: int = 24
    description: str = ""
    tags: str = "machinelearning, keras, tensorflow, python"
    site_url: str = ""
    cover_image: str = ""

    def check(self) -> None:
        """Validate the target, the size of the example grid, the tags and the URLs."""
        _require(0 < self.target_accuracy <= 1, "report.target_accuracy", self.target_accuracy,
                 "a number in (0, 1]")
        _require(1 <= self.examples <= 100, "report.examples", self.examples,
                 "an integer in [1, 100]")
        tags = [t.strip() for t in self.tags.split(",") if t.strip()]
        _require(len(tags) <= 4 and all(re.fullmatch(r"[a-z0-9]+", t) for t in tags),
                 "report.tags", self.tags,
                 "at most 4 comma-separated tags of lowercase letters and digits (dev.to's rule)")
        for key in ("site_url", "cover_image"):
            value = getattr(self, key)
            _require(not value or re.match(r"https?://", value) is not None, f"report.{key}",
                     value, "'' or an absolute http(s) URL")


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml."""

    seed: int = 42
    data: DataParams = field(default_factory=DataParams)
    model: ModelParams = field(default_factory=ModelParams)
    features: FeaturesParams = field(default_factory=FeaturesParams)
    train: TrainParams = field(default_factory=TrainParams)
    finetune: FinetuneParams = field(default_factory=FinetuneParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    report: ReportParams = field(default_factory=ReportParams)

    def check(self) -> None:
        """Validate every section."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                value.check()


def _type_name(tp: object) -> str:
    """A short name for a field type, as shown in error messages."""
    bases = [a for a in typing.get_args(tp) or (tp,) if a is not type(None)]
    name = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return " or ".join(name.get(base, "a mapping") for base in bases)


def _coerce(value: object, tp: object, key: str) -> object:
    """Check `value` against the field type `tp` (ints are accepted where floats are)."""
    optional = isinstance(tp, types.UnionType) and type(None) in typing.get_args(tp)
    if value is None and optional:
        return None
    bases = [a for a in typing.get_args(tp) or (tp,) if a is not type(None)]
    if dataclasses.is_dataclass(bases[0]):
        return _build(bases[0], value, key)
    if float in bases and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if float in bases and isinstance(value, str) and FLOAT_WITHOUT_DOT.fullmatch(value):
        return float(value)
    ok = any(isinstance(value, base) and not (base is int and isinstance(value, bool))
             for base in bases)
    if not ok:
        raise ParamError(f"{key}={value!r} has the wrong type: expected {_type_name(tp)}")
    return value


def _build(cls: type, raw: object, prefix: str) -> object:
    """Build dataclass `cls` from a mapping, rejecting unknown keys with a suggestion."""
    if not isinstance(raw, dict):
        raise ParamError(f"{prefix or 'params.yaml'} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in raw.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(names)}"
            raise ParamError(f"unknown parameter '{full}'{hint}")
        values[key] = _coerce(value, hints[key], full)
    return cls(**values)


def load_params(path: Path = PARAMS) -> Params:
    """Read, type-check and validate params.yaml; raise ParamError on the first problem."""
    if not path.is_file():
        raise ParamError(f"{path} not found: run from the project root")
    with path.open() as f:
        raw = yaml.safe_load(f) or {}
    params = _build(Params, raw, "")
    params.check()
    return params
