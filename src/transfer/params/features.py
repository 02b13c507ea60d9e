"""The `features` section: how the frozen base runs over the images (also finetune's cache)."""

from __future__ import annotations

from typing import Literal

from pydantic import StrictBool, StrictInt

from transfer.params.fields import ENGINES, PRECISIONS, Section, rule


class FeaturesParams(Section):
    """`features`: how the frozen base is run over the images."""

    batch_size: StrictInt = rule(64, "an integer >= 1", ge=1)
    precision: Literal[PRECISIONS] = rule("float32", " | ".join(PRECISIONS))
    jit_compile: StrictBool = False
    engine: Literal[ENGINES] = rule("auto", " | ".join(ENGINES))
