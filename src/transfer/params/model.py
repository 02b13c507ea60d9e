"""The `model` section: the Keras application used as the frozen base."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import StrictStr, model_validator

from transfer.params.catalogue import check_backbone
from transfer.params.features import FeaturesParams
from transfer.params.fields import Section, StageParams, auto
from transfer.runtime.errors import ParamError


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


class FeaturesStageParams(StageParams):
    """What `features` reads: the base and how to run it."""

    model: ModelParams = ModelParams()
    features: FeaturesParams = FeaturesParams()
