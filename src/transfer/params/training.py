"""The `train` and `finetune` sections: the head on cached features, then the base unfrozen."""

from __future__ import annotations

from typing import Literal

from pydantic import StrictBool, StrictInt

from transfer.params.features import FeaturesParams
from transfer.params.fields import (
    AUTO,
    PRECISIONS,
    STRATEGIES,
    Number,
    Section,
    StageParams,
    auto,
    either,
    rule,
)


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
    """`finetune.augment`: Keras preprocessing layers applied while fine-tuning; over the
    activation cache, flips as two cached copies of each training image (it and its mirror)."""

    flip: StrictBool = True
    rotation: Number = rule(0.0, "a number in [0, 1)", ge=0, lt=1)
    zoom: Number = rule(0.0, "a number in [0, 1)", ge=0, lt=1)

    @property
    def cacheable(self) -> bool:
        """True when the activation cache can serve this augmentation: flips, no rotation or
        zoom."""
        return self.rotation == self.zoom == 0


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
    precision: Literal[PRECISIONS] = rule("float32", " | ".join(PRECISIONS))
    jit_compile: StrictBool = False
    strategy: Literal[STRATEGIES] = rule("auto", " | ".join(STRATEGIES))
    augment: AugmentParams = AugmentParams()


class TrainStageParams(StageParams):
    """What `train` reads."""

    train: TrainParams = TrainParams()


class FinetuneStageParams(StageParams):
    """What `finetune` reads: its section, and how `features` runs the base (the cache pass)."""

    features: FeaturesParams = FeaturesParams()
    finetune: FinetuneParams = FinetuneParams()
