"""Typed, validated view of `params.yaml`: one pydantic model per section, and the values each
choice allows. Loads without TensorFlow: every stage reads it, the report included.

Every problem is one line (a ParamError) naming the key, the value and what is allowed, with
"did you mean" for a misspelt key. Types are strict (true is not 1, "3" is not 3); integers
are taken where numbers are, and so is `1e-05`, which PyYAML reads as a string (YAML 1.1
floats need a dot) and `dvc exp run -S` writes.
"""

import difflib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from transfer.applications import check_backbone
from transfer.paths import PARAMS
from transfer.runtime import ParamError

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")  # Keras dtype policies
STRATEGIES = ("auto", "mirrored", "multiworker")  # see transfer.distribute
ENGINES = ("auto", "keras", "openvino")  # see transfer.engines
HELD_OUT = ("test", "val", "valid", "validation")  # folders beside train/ that can be the test set
RESIZE_MODES = ("crop", "squash")  # how a non-square image becomes a square (transfer.data)
FLOAT_WITHOUT_DOT = re.compile(r"[-+]?[0-9]+[eE][-+]?[0-9]+")
AUTO = "'auto' (transfer.recipe) or "


def _number(value: object) -> float:
    """Numbers as floats, `1e-05` strings included; anything else a type error."""
    if isinstance(value, str) and FLOAT_WITHOUT_DOT.fullmatch(value):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("wrong_type", "a number")
    return float(value)


def _integer(value: object) -> int:
    """Integers as they are; anything else (true included) a type error."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("wrong_type", "an integer")
    return value


def either(words: str | tuple[str, ...], kind: type, ok: Callable[[Any], bool],
           allowed: str) -> Any:
    """A field that takes one of `words` (e.g. 'auto') or a `kind` value for which `ok` holds."""
    words = (words,) if isinstance(words, str) else words

    def check(value: object) -> object:
        """One of `words` as it is, else the value checked as `kind` and by `ok`."""
        if value in words:
            return value
        if isinstance(value, str) and not FLOAT_WITHOUT_DOT.fullmatch(value):
            raise PydanticCustomError("not_allowed", "not allowed")
        value = _integer(value) if kind is int else _number(value)
        if not ok(value):
            raise PydanticCustomError("not_allowed", "not allowed")
        return value
    return Annotated[kind | Literal[words], BeforeValidator(check), Field(description=allowed)]


def auto(kind: type, ok: Callable[[Any], bool], allowed: str) -> Any:
    """A recipe field: 'auto' (see transfer.recipe) or an explicit value."""
    return either("auto", kind, ok, AUTO + allowed)


Number = Annotated[float, BeforeValidator(_number)]


def rule(default: Any, allowed: str, **constraints: Any) -> Any:
    """A field with its default, its constraints and `allowed`, what the error message says."""
    return Field(default, description=allowed, **constraints)


class Section(BaseModel):
    """A section of params.yaml: frozen, unknown keys refused (each field's type is strict)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    """`data`: where the images come from and how the training set is split."""

    source: Literal["cifar10", "folder"] = rule("cifar10", "'cifar10' or 'folder'")
    path: StrictStr = ""
    name: StrictStr = ""
    test_folder: Literal["", *HELD_OUT] = rule(
        "", "'' (found by itself) or one of " + ", ".join(HELD_OUT))
    test_split: Number = rule(0.2, "a number in (0, 1)", gt=0, lt=1)
    image_size: StrictInt | None = rule(
        None, "null (from the data) or an integer in [8, 1024]", ge=8, le=1024)
    resize: Literal[RESIZE_MODES] = rule("crop", " | ".join(RESIZE_MODES))
    fraction: Number = rule(1.0, "a number in (0, 1]", gt=0, le=1)
    val_split: Number = rule(0.1, "a number in (0, 1)", gt=0, lt=1)
    val_min: StrictInt = rule(
        20, "an integer >= 0 (validation images per class at least; 0: no minimum)", ge=0)
    skip_corrupt: StrictBool = False

    @field_validator("path")
    @classmethod
    def _from_the_repository(cls, path: str) -> str:
        """A relative path as the user wrote it: from the repository's root, also in the
        temporary copy where DVC runs a queued experiment (whose root is DVC_ROOT)."""
        root = os.environ.get("DVC_ROOT")
        if path and root and not Path(path).is_absolute() and not Path(path).exists() \
                and (Path(root) / path).exists():
            return str(Path(root) / path)
        return path

    @model_validator(mode="after")
    def _path_fits_source(self) -> Self:
        """A folder source needs a path that exists."""
        if self.source == "folder" and not (self.path and Path(self.path).exists()):
            allowed = ("a path that exists" if self.path else
                       "a directory, .tar.gz or .zip when data.source is 'folder'")
            raise ParamError(f"data.path={self.path!r} is not allowed: {allowed}")
        return self


class ModelParams(Section):
    """`model`: the Keras application used as the frozen base."""

    backbone: StrictStr = "EfficientNetLite0"
    input_size: auto(int, lambda v: 32 <= v <= 1024, "an integer in [32, 1024]") = "auto"
    weights: StrictStr = "imagenet"
    cut_layer: StrictStr | None = None  # checked when the base is built, in `features`

    @model_validator(mode="after")
    def _known(self) -> Self:
        """A known backbone; weights that exist."""
        check_backbone(self.backbone)
        if self.weights not in ("imagenet", "none") and not Path(self.weights).is_file():
            raise ParamError(f"model.weights={self.weights!r} is not allowed: 'imagenet', "
                             "'none' or an existing weights file")
        return self


class FeaturesParams(Section):
    """`features`: how the frozen base is run over the images."""

    batch_size: StrictInt = rule(64, "an integer >= 1", ge=1)
    precision: Literal[PRECISIONS] = rule("float32", " | ".join(PRECISIONS))
    jit_compile: StrictBool = False
    engine: Literal[ENGINES] = rule("auto", " | ".join(ENGINES))


class TrainParams(Section):
    """`train`: the classification head fitted on cached features."""

    epochs: StrictInt = rule(20, "an integer >= 1", ge=1)
    batch_size: auto(int, lambda v: v >= 1, "an integer >= 1") = "auto"
    learning_rate: Number = rule(1e-3, "a number > 0", gt=0)
    dropout: Number = rule(0.2, "a number in [0, 1)", ge=0, lt=1)
    hidden_units: StrictInt = rule(0, "an integer >= 0 (0: no hidden layer)", ge=0)
    patience: StrictInt = rule(3, "an integer >= 1", ge=1)
    strategy: Literal[STRATEGIES] = rule("auto", " | ".join(STRATEGIES))


class AugmentParams(Section):
    """`finetune.augment`: Keras preprocessing layers applied while fine-tuning."""

    flip: StrictBool = True
    rotation: auto(float, lambda v: 0 <= v < 1, "a number in [0, 1)") = "auto"
    zoom: auto(float, lambda v: 0 <= v < 1, "a number in [0, 1)") = "auto"
    translation: Number = rule(0.0, "a number in [0, 1)", ge=0, lt=1)

    @property
    def flip_only(self) -> bool:
        """True when no augmentation other than a horizontal flip is asked for."""
        return self.rotation == self.zoom == self.translation == 0


class FinetuneParams(Section):
    """`finetune`: the top layers of the base (or all of it) unfrozen and trained with the head."""

    layers: either(("auto", "all"), int, lambda v: v >= 0,
                   AUTO + "'all' or an integer >= 0 (0: skip)") = "auto"
    epochs: StrictInt = rule(5, "an integer >= 0", ge=0)
    batch_size: auto(int, lambda v: v >= 1, "an integer >= 1") = "auto"
    learning_rate: auto(float, lambda v: v > 0, "a number > 0") = "auto"
    weight_decay: Number = rule(0.05, "a number >= 0", ge=0)
    warmup: Number = rule(0.05, "a number in [0, 1)", ge=0, lt=1)
    label_smoothing: Number = rule(0.0, "a number in [0, 1)", ge=0, lt=1)
    start_size: StrictInt | None = rule(
        None, "null (model.input_size throughout) or an integer >= 32", ge=32)
    precision: Literal[PRECISIONS] = rule("float32", " | ".join(PRECISIONS))
    jit_compile: StrictBool = False
    strategy: Literal[STRATEGIES] = rule("auto", " | ".join(STRATEGIES))
    augment: AugmentParams = AugmentParams()

    @property
    def cacheable(self) -> bool:
        """True when the activation cache can serve the run: flips only, one input size."""
        return self.augment.flip_only and not self.start_size


class EvaluateParams(Section):
    """`evaluate`: test-set scoring of the exported model."""

    batch_size: StrictInt = rule(128, "an integer >= 1", ge=1)
    top_k: StrictInt = rule(3, "an integer >= 1", ge=1)
    engine: Literal[ENGINES] = rule("auto", " | ".join(ENGINES))
    flip: StrictBool = True


class ReportParams(Section):
    """`report`: the paper's front matter and the accuracy target it is judged against."""

    title: StrictStr = ""
    author: StrictStr = "Anonymous"
    affiliation: StrictStr = ""
    date: StrictStr = ""
    target_accuracy: Number = rule(0.87, "a number in (0, 1]", gt=0, le=1)
    examples: StrictInt = rule(24, "an integer in [1, 100]", ge=1, le=100)
    description: StrictStr = ""
    tags: StrictStr = "machinelearning, keras, tensorflow, python"
    site_url: StrictStr = ""
    cover_image: StrictStr = ""

    @model_validator(mode="after")
    def _publishable(self) -> Self:
        """dev.to's tag rule; absolute http(s) URLs."""
        tags = [t.strip() for t in self.tags.split(",") if t.strip()]
        if len(tags) > 4 or not all(re.fullmatch(r"[a-z0-9]+", t) for t in tags):
            raise ParamError(f"report.tags={self.tags!r} is not allowed: at most 4 comma-"
                             "separated tags of lowercase letters and digits (dev.to's rule)")
        for key in ("site_url", "cover_image"):
            value = getattr(self, key)
            if value and not re.match(r"https?://", value):
                raise ParamError(f"report.{key}={value!r} is not allowed: '' or an absolute "
                                 "http(s) URL")
        return self


class Params(Section):
    """The whole of params.yaml."""

    seed: StrictInt = 42
    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
    features: FeaturesParams = FeaturesParams()
    train: TrainParams = TrainParams()
    finetune: FinetuneParams = FinetuneParams()
    evaluate: EvaluateParams = EvaluateParams()
    report: ReportParams = ReportParams()


TYPE_NAMES = {"int": "an integer", "float": "a number", "string": "a string",
              "bool": "true or false"}


def _field(loc: tuple, unknown: bool) -> tuple[type[BaseModel], str, str]:
    """The model that holds the field at `loc` (an `unknown` key: that would), the field's
    name and its dotted key; the union branches in `loc` are skipped."""
    model, names = Params, []
    for part in loc:
        if part in model.model_fields:
            names.append(part)
            inner = model.model_fields[part].annotation
            if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
                return model, part, ".".join(names)
            model = inner
        elif unknown:
            return model, str(part), ".".join([*names, str(part)])
    return model, names[-1] if names else "", ".".join(names)


def _message(error: dict) -> str:
    """One line for the first error pydantic found."""
    model, name, key = _field(error["loc"], unknown=error["type"] == "extra_forbidden")
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        known = list(model.model_fields)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        return f"unknown parameter '{key}'; {hint}"
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return f"{key} must be a mapping, got {value!r}"
    info = model.model_fields.get(name)
    allowed = info.description if info is not None else None
    if error["type"] == "wrong_type" or error["type"].endswith(("_type", "_parsing")):
        expected = error["msg"] if error["type"] == "wrong_type" else TYPE_NAMES.get(
            error["type"].split("_")[0], "another type")
        return f"{key}={value!r} has the wrong type: expected {expected}"
    return f"{key}={value!r} is not allowed: {allowed or error['msg']}"


def load_params(path: Path = PARAMS) -> Params:
    """Read, type-check and validate params.yaml; raise ParamError on the first problem."""
    if not path.is_file():
        raise ParamError(f"{path} not found: run from the project root")
    with path.open() as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ParamError(f"params.yaml must be a mapping, got {raw!r}")
    return parse_params(raw)


def parse_params(raw: dict) -> Params:
    """Type-check and validate params given as a mapping; raise ParamError on the first
    problem."""
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        raise ParamError(_message(e.errors()[0])) from None
