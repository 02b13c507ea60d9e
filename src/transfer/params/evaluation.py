"""The `evaluate` section: scoring on the test set, calibration, class maps, the export."""

from __future__ import annotations

from typing import Literal

from pydantic import StrictBool, StrictInt

from transfer.params.fields import ENGINES, Section, StageParams, rule


class EvaluateParams(Section):
    """`evaluate`: test-set scoring of the exported model."""

    batch_size: StrictInt = rule(128, "an integer >= 1", ge=1)
    top_k: StrictInt = rule(3, "an integer >= 1", ge=1)
    engine: Literal[ENGINES] = rule("auto", " | ".join(ENGINES))
    flip: StrictBool = True
    calibrate: StrictBool = True
    maps: StrictInt = rule(6, "an integer in [0, 24]", ge=0, le=24)


class EvaluateStageParams(StageParams):
    """What `evaluate` reads."""

    evaluate: EvaluateParams = EvaluateParams()
