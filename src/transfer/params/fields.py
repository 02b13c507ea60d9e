"""The field types of params.yaml and its errors; each stage loads its own sections.

A problem is one line (ParamError) naming the key, the value and what is allowed, with "did
you mean" for a misspelt key. Types are strict (true is not 1, "3" is not 3), but an integer
is a number, and so is `1e-05` (a string to PyYAML, as `dvc exp run -S` writes it)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from transfer.runtime.errors import ParamError
from transfer.runtime.paths import PARAMS

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")  # Keras dtype policies
STRATEGIES = ("auto", "mirrored", "multiworker")  # see transfer.training.distribute
ENGINES = ("auto", "keras", "openvino")  # see transfer.models.engines
HELD_OUT = ("test", "val", "valid", "validation")  # folders beside train/ that can be the test set
RESIZE_MODES = ("crop", "squash")  # how a non-square image becomes a square (data.images)
FLOAT_WITHOUT_DOT = re.compile(r"[-+]?[0-9]+[eE][-+]?[0-9]+")
AUTO = "'auto' (transfer.training.recipe) or "
KEYS = {  # every mapping's keys, so that each stage refuses a misspelt one before any work
    "": ("seed", "data", "model", "features", "audit", "train", "finetune", "evaluate",
         "report"),
    "data": ("source", "path", "name", "test_folder", "test_split", "image_size",
                         "resize", "fraction", "val_split", "val_min", "skip_corrupt"),
    "model": ("backbone", "input_size", "weights", "cut_layer"),
    "features": ("batch_size", "precision", "jit_compile", "engine"),
    "train": ("epochs", "batch_size", "learning_rate", "dropout", "hidden_units", "patience",
              "strategy"),
    "finetune": ("layers", "epochs", "batch_size", "learning_rate", "weight_decay", "warmup",
                 "label_smoothing", "precision", "jit_compile", "strategy", "augment"),
    "finetune.augment": ("flip", "rotation", "zoom"),
    "audit": ("candidates", "max_shift", "min_correlation", "min_cosine"),
    "evaluate": ("batch_size", "top_k", "engine", "flip", "calibrate", "maps"),
    "report": ("title", "author", "affiliation", "date", "target_accuracy", "examples",
               "description", "tags", "site_url", "cover_image", "repository")}


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
    """A recipe field: 'auto' (see transfer.training.recipe) or an explicit value."""
    return either("auto", kind, ok, AUTO + allowed)


Number = Annotated[float, BeforeValidator(_number)]


def rule(default: Any, allowed: str, **constraints: Any) -> Any:
    """A field with its default, its constraints and `allowed`, what the error message says."""
    return Field(default, description=allowed, **constraints)


class Section(BaseModel):
    """A section of params.yaml: frozen, unknown keys refused (each field's type is strict)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def unknown_key(raw: object, path: str = "") -> tuple[str, tuple[str, ...]] | None:
    """The first key of the mapping `raw` (at dotted `path`) that KEYS does not know, with the
    keys it knows there; None when every key is known."""
    if not isinstance(raw, dict) or path not in KEYS:
        return None
    for key, value in raw.items():
        dotted = f"{path}.{key}" if path else str(key)
        found = (dotted, KEYS[path]) if key not in KEYS[path] else unknown_key(value, dotted)
        if found:
            return found
    return None


class StageParams(Section):
    """The sections of params.yaml that one stage reads, and `seed`: the other sections' keys
    are checked by name (`KEYS`), their values by the stages that read them."""

    model_config = ConfigDict(extra="allow", frozen=True)
    seed: StrictInt = 42

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, raw: object) -> object:
        """A misspelt key, also in a section this stage does not read, is an error now, not a
        value silently left out."""
        if found := unknown_key(raw):
            key, known = found
            close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
            raise ParamError(f"unknown parameter '{key}'; " + (
                f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"))
        return raw


P = TypeVar("P", bound=BaseModel)


TYPE_NAMES = {"int": "an integer", "float": "a number", "string": "a string",
              "bool": "true or false"}


def _field(root: type[BaseModel], loc: tuple) -> tuple[type[BaseModel], str, str]:
    """The model under `root` that holds the field at `loc`, the field's name and its dotted
    key; the union branches in `loc` are skipped."""
    model, names = root, []
    for part in loc:
        if part in model.model_fields:
            names.append(part)
            inner = model.model_fields[part].annotation
            if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
                return model, part, ".".join(names)
            model = inner
    return model, names[-1] if names else "", ".".join(names)


def _message(root: type[BaseModel], error: dict) -> str:
    """One line for the first error pydantic found validating `root`."""
    model, name, key = _field(root, error["loc"])
    value = error.get("input")
    if error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        return f"{key} must be a mapping, got {value!r}"
    info = model.model_fields.get(name)
    allowed = info.description if info is not None else None
    if error["type"] == "wrong_type" or error["type"].endswith(("_type", "_parsing")):
        expected = error["msg"] if error["type"] == "wrong_type" else TYPE_NAMES.get(
            error["type"].split("_")[0], "another type")
        return f"{key}={value!r} has the wrong type: expected {expected}"
    return f"{key}={value!r} is not allowed: {allowed or error['msg']}"


def load_params(model: type[P], path: Path = PARAMS) -> P:
    """Read params.yaml as `model` (a stage's sections, or all); ParamError on the first
    problem."""
    if not path.is_file():
        raise ParamError(f"{path} not found: run from the project root")
    with path.open() as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ParamError(f"params.yaml must be a mapping, got {raw!r}")
    return parse_params(model, raw)


def parse_params(model: type[P], raw: dict) -> P:
    """Params given as a mapping, type-checked and validated as `model`; ParamError on the
    first problem."""
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise ParamError(_message(model, e.errors()[0])) from None
