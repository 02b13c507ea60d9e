"""The paper's checks of its own results: test images with a near-copy in the other data
(`audit`), how far the probabilities can be believed (calibration), and where the fine-tuned
model looks (class-activation maps), from what `audit` and `evaluate` wrote; their figures are
`transfer.paper.figures`'."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from transfer.paper.run import Run, frozen
from transfer.paper.stats import wilson_interval
from transfer.paper.wording import Table, percent
from transfer.runtime.files import read_json
from transfer.runtime.paths import AUDIT, CLASS_MAPS, NEAR_COPIES

PAIRS_SHOWN = 12  # closest pairs in the near-copies figure
WHERE = {"train": "training split", "val": "validation split", "test": "test set (pairs)"}


def scored(predictions: Sequence[Mapping[str, str]], keep: list[int], column: str) -> dict:
    """Accuracy with Wilson's interval of one model (`column`: its predicted class) on `keep`."""
    correct = sum(predictions[i][column] == predictions[i]["actual"] for i in keep)
    return {"count": len(keep), "accuracy": correct / len(keep) if keep else None,
            "ci": wilson_interval(correct, len(keep))}


def audit_values(predictions: Sequence[Mapping[str, str]]) -> dict:
    """The near-copy counts, accuracy without and with them, and the closest pairs."""
    with NEAR_COPIES.open() as f:
        pairs = list(csv.DictReader(f))
    copied = sorted({int(r["test_index"]) for r in pairs
                     if r["kind"] != "none" and r["split"] != "test"})
    clean = sorted(set(range(len(predictions))) - set(copied))
    groups = {"all": list(range(len(predictions))), "clean": clean, "copied": copied}
    outside = sorted((r for r in pairs if r["split"] != "test"),
                     key=lambda r: (r["kind"] == "none", -float(r["pixel_correlation"]),
                                    int(r["test_index"])))
    return {**read_json(AUDIT), "copied": len(copied), "closest": outside[:PAIRS_SHOWN],
            "groups": {name: {model: scored(predictions, keep, column)
                              for model, column in (("head", "head_predicted"),
                                                    ("finetuned", "predicted"))}
                       for name, keep in groups.items()}}


def tables(audit: dict, calibration: Mapping) -> dict[str, Table]:
    """The near-copy counts, accuracy with and without the copied test images, calibration."""
    groups = audit["groups"]
    accuracy_rows = []
    for name, label in (("all", "all"), ("clean", "without a near-copy in train or val"),
                        ("copied", "with one")):
        head, tuned = groups[name]["head"], groups[name]["finetuned"]
        accuracy_rows.append([label, f"{tuned['count']:,}", percent(head["accuracy"]),
                              percent(tuned["accuracy"]),
                              f"{percent(tuned['ci'][0])} – {percent(tuned['ci'][1])}"
                              if tuned["count"] else "—"])
    return {
        "near_copies": Table(
            "Test images with an exact or near copy among the other images, by where the copy "
            "is (a pair within the test set counted once).",
            ["copy in", "exact copies", "near copies"],
            [[WHERE[split], f"{audit['pairs'][split]['exact']:,}",
              f"{audit['pairs'][split]['near']:,}"] for split in WHERE],
            "table-near-copies.png"),
        "clean_accuracy": Table(
            "Test accuracy on all test images, on those without a near-copy in the training "
            "or validation split, and on those with one; the interval is the fine-tuned "
            "model's (Wilson, 95%).",
            ["test images", "count", "head only", "fine-tuned", "95% CI"], accuracy_rows,
            "table-clean-accuracy.png"),
        "calibration": Table(
            "Calibration on the test set: the temperature fitted on the validation split, and "
            "the expected calibration error (15 bins) and negative log-likelihood before and "
            "after scaling by it.",
            ["model", "temperature", "ECE before", "ECE after", "NLL before", "NLL after"],
            [[label, f"{c['temperature']:.2f}", percent(c["ece"], 2),
              percent(c["ece_calibrated"], 2), f"{c['nll']:.3f}", f"{c['nll_calibrated']:.3f}"]
             for label, c in (("head only", calibration["head"]),
                              ("fine-tuned", calibration["finetuned"]))],
            "table-calibration.png"),
    }


@dataclass(frozen=True)
class ClassMaps:
    """The Grad-CAM maps `evaluate` wrote: how many, how many of them right, and the layer
    mapped with its side in positions."""

    count: int
    right: int
    layer: str
    side: int

    @property
    def wrong(self) -> int:
        """Maps of mistakes."""
        return self.count - self.right


@dataclass(frozen=True)
class Checks:
    """The checks' values and tables."""

    audit: Mapping
    calibration: Mapping  # model -> its temperature, ECE and NLL before and after
    class_maps: ClassMaps
    tables: Mapping[str, Table]


def class_maps(run: Run) -> ClassMaps:
    """What the class-map file holds."""
    with np.load(CLASS_MAPS) as found:
        index, predicted, maps = found["index"], found["predicted"], found["maps"]
        layer = str(found["layer"])
    right = sum(run.predictions[i]["actual"] == run.classes[c] for i, c in zip(index, predicted))
    return ClassMaps(count=len(index), right=int(right), layer=layer, side=int(maps.shape[-1]))


def checks(run: Run) -> Checks:
    """The near-copy audit, calibration and class maps of `run`."""
    audit = audit_values(run.predictions)
    calibration = {model: run.evaluation[model]["calibration"] for model in ("head", "finetuned")}
    return Checks(audit=frozen(audit), calibration=frozen(calibration), class_maps=class_maps(run),
                  tables=frozen(tables(audit, calibration)))
