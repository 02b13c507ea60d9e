"""The `data` section: where the images come from and how the training set is split."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Self

from pydantic import StrictBool, StrictInt, StrictStr, field_validator, model_validator

from transfer.params.fields import HELD_OUT, RESIZE_MODES, Number, Section, StageParams, rule
from transfer.params.model import ModelParams
from transfer.runtime.errors import ParamError


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


class FetchStageParams(StageParams):
    """What `fetch` reads: the data, and the model whose input size it stores images for."""

    data: DataParams = DataParams()
    model: ModelParams = ModelParams()
