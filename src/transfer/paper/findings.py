"""What the run found, as numbers: each model's test scores, the paired comparison, the
classes, the mistakes and how each phase fit (frozen values, computed from a `Run`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from transfer.paper.run import Run, frozen
from transfer.paper.stats import discordant, mcnemar_p, wilson_interval

MISTAKES_SHOWN = 16  # the most confident mistakes in their figure
SURE = 0.9  # a mistake at this confidence or more is one the model was sure of


@dataclass(frozen=True)
class Scores:
    """One model's test-set scores."""

    accuracy: float
    ci: tuple[float, float]  # Wilson's 95% interval
    loss: float
    top_k: float
    correct: int
    count: int
    per_class: Mapping[str, float]


@dataclass(frozen=True)
class ClassChange:
    """One class's test accuracy before and after fine-tuning."""

    name: str
    head: float
    tuned: float

    @property
    def gain(self) -> float:
        """Fine-tuned minus head accuracy."""
        return self.tuned - self.head


@dataclass(frozen=True)
class PhaseFit:
    """A phase's last epoch: training and validation accuracy, and whether validation accuracy
    was still rising (the last epoch strictly better than all before)."""

    train: float
    validation: float
    improving: bool


@dataclass(frozen=True)
class Findings:
    """The run's results, as the paper states them."""

    head: Scores
    tuned: Scores
    unflipped: Scores | None  # the fine-tuned model without test-time flips (evaluate.flip)
    top_k: int
    only_head: int  # test images right only for the head (McNemar's b)
    only_tuned: int  # ... only for the fine-tuned model (c)
    p: float  # McNemar's exact p
    classes: tuple[ClassChange, ...]  # by fine-tuned accuracy, worst first
    confused: tuple[tuple[tuple[str, str], int], ...]  # the most frequent (true, predicted)
    shown: tuple[int, ...]  # test images in the picture at the top
    shown_right: int
    mistakes: tuple[int, ...]  # the most confident mistakes, most confident first
    sure_mistakes: int  # mistakes at confidence SURE or more, of all the test set's
    fits: Mapping[str, PhaseFit]
    target_met: bool | None  # None: no report.target_accuracy

    @property
    def gain(self) -> float:
        """Fine-tuned minus head test accuracy (flips included where the export has them)."""
        return self.tuned.accuracy - self.head.accuracy

    @property
    def tuning_gain(self) -> float:
        """What fine-tuning itself added: the fine-tuned model without flips minus the head."""
        return (self.unflipped or self.tuned).accuracy - self.head.accuracy

    @property
    def standard_error(self) -> float:
        """One standard error of the exported model's test accuracy (binomial)."""
        return (self.tuned.accuracy * (1 - self.tuned.accuracy) / self.tuned.count) ** 0.5

    @property
    def flip_gain(self) -> float | None:
        """What test-time flips added to the fine-tuned model's accuracy (None: no flips)."""
        return None if self.unflipped is None else self.tuned.accuracy - self.unflipped.accuracy


def scores(raw: Mapping, top_k: int) -> Scores:
    """A model's scores from evaluate.json's entry."""
    return Scores(accuracy=raw["accuracy"], ci=wilson_interval(raw["correct"], raw["count"]),
                  loss=raw["loss"], top_k=raw[f"top_{top_k}_accuracy"], correct=raw["correct"],
                  count=raw["count"], per_class=raw["per_class_accuracy"])


def phase_fit(curves: Mapping) -> PhaseFit | None:
    """How a phase ended, from its curves (None without both accuracy curves)."""
    accuracy = curves.get("accuracy", {})
    if "train" not in accuracy or "validation" not in accuracy:
        return None
    train, val = accuracy["train"][1], accuracy["validation"][1]
    return PhaseFit(train=train[-1], validation=val[-1],
                    improving=len(val) > 1 and val[-1] > max(val[:-1]))


def findings(run: Run) -> Findings:
    """The run's results (`Run`), computed once."""
    evaluated, predictions = run.evaluation, run.predictions
    k = min(run.params.evaluate.top_k, len(run.classes))
    head, tuned = scores(evaluated["head"], k), scores(evaluated["finetuned"], k)
    unflipped = evaluated.get("finetuned_unflipped")
    ok = [r["predicted"] == r["actual"] for r in predictions]
    b, c = map(len, discordant([r["head_predicted"] == r["actual"] for r in predictions], ok))
    confidence = [float(r["confidence"]) for r in predictions]
    wrong = [i for i in range(len(ok)) if not ok[i]]
    shown = np.sort(np.random.default_rng(run.params.seed).choice(
        len(predictions), min(run.params.report.examples, len(predictions)), replace=False))
    pairs = Counter((r["actual"], r["predicted"]) for r in predictions
                    if r["actual"] != r["predicted"])
    target = run.params.report.target_accuracy
    return Findings(
        head=head, tuned=tuned, unflipped=scores(unflipped, k) if unflipped else None, top_k=k,
        only_head=b, only_tuned=c, p=mcnemar_p(b, c),
        classes=tuple(sorted((ClassChange(name, head.per_class[name], tuned.per_class[name])
                              for name in run.classes), key=lambda x: (x.tuned, x.name))),
        confused=frozen(sorted(pairs.items(), key=lambda item: (-item[1], item[0]))[:5]),
        shown=tuple(int(i) for i in shown), shown_right=sum(ok[i] for i in shown),
        mistakes=tuple(sorted(wrong, key=lambda i: (-confidence[i], i))[:MISTAKES_SHOWN]),
        sure_mistakes=sum(confidence[i] >= SURE for i in wrong),
        fits=frozen({phase: fit for phase, curves in run.curves.items()
                     if (fit := phase_fit(curves))}),
        target_met=None if target is None else tuned.accuracy >= target)
