"""The paper's checks of its own results: test images with a near-copy in the other data
(`audit`), how far the probabilities can be believed (calibration), and where the fine-tuned
model looks (class-activation maps), from what `audit` and `evaluate` wrote."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from transfer.data.arrays import load_split
from transfer.models.calibration import reliability
from transfer.paper import charts
from transfer.paper.stats import wilson_interval
from transfer.paper.wording import Table, percent
from transfer.runtime.files import read_json
from transfer.runtime.paths import AUDIT, CLASS_MAPS, NEAR_COPIES, PREPARED

PAIRS_SHOWN = 12  # closest pairs in the near-copies figure
WHERE = {"train": "training split", "val": "validation split", "test": "test set (pairs)"}


def scored(predictions: list[dict], keep: list[int], column: str) -> dict:
    """Accuracy with Wilson's interval of one model (`column`: its predicted class) on `keep`."""
    correct = sum(predictions[i][column] == predictions[i]["actual"] for i in keep)
    return {"count": len(keep), "accuracy": correct / len(keep) if keep else None,
            "ci": wilson_interval(correct, len(keep))}


def audit_values(predictions: list[dict]) -> dict:
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


def calibration_values(results: dict, predictions: list[dict]) -> dict:
    """Each model's temperature with ECE and NLL before and after, and its reliability bins."""
    bins = {}
    for model, prefix in (("head", "head_"), ("finetuned", "")):
        right = np.array([r[f"{prefix}predicted"] == r["actual"] for r in predictions])
        bins[model] = {when: reliability(np.array([float(r[column]) for r in predictions]), right)
                       for when, column in (("before", f"{prefix}confidence"),
                                            ("after", f"{prefix}calibrated_confidence"))}
    return {"models": {model: results[model]["calibration"] for model in ("head", "finetuned")},
            "bins": bins}


def tables(audit: dict, calibration: dict) -> dict[str, Table]:
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
    models = calibration["models"]
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
             for label, c in (("head only", models["head"]),
                              ("fine-tuned", models["finetuned"]))],
            "table-calibration.png"),
    }


def class_map_values(predictions: list[dict], classes: list[str]) -> dict:
    """The mapped test images (`evaluate`'s maps, their indices and predicted classes), how
    many, and how many of them right."""
    with np.load(CLASS_MAPS) as found:
        maps = {key: found[key] for key in ("index", "predicted", "maps")}
    right = [predictions[i]["actual"] == classes[c]
             for i, c in zip(maps["index"], maps["predicted"])]
    return {**maps, "count": len(right), "right": sum(right), "wrong": len(right) - sum(right)}


def draw(values: dict, predictions: list[dict], classes: list[str], figures: Path) -> None:
    """The near-copies, reliability and class-map figures into `figures`."""
    x = {split: load_split(PREPARED, split)[0] for split in ("train", "val", "test")}
    closest = values["audit"]["closest"]
    if closest:
        charts.image_pairs(
            [(x["test"][int(r["test_index"])], x[r["split"]][int(r["neighbour_index"])])
             for r in closest],
            [(f"test {r['test_index']}", f"{r['split']} {r['neighbour_index']}: "
              f"{r['kind']}, r={float(r['pixel_correlation']):.2f}") for r in closest],
            figures / "near-copies.png")
    labels = {"head": "head only", "finetuned": "fine-tuned"}
    charts.reliability({labels[m]: bins for m, bins in values["calibration"]["bins"].items()},
                       figures / "reliability.png")
    mapped = values["class_maps"]
    index, predicted, maps = mapped["index"], mapped["predicted"], mapped["maps"]
    if len(index):
        rows = [predictions[i] for i in index]
        charts.class_maps(x["test"][index], maps, [
            classes[c] if r["actual"] == classes[c] else f"{classes[c]}\n(true: {r['actual']})"
            for r, c in zip(rows, predicted)], [r["actual"] == classes[c]
                                                for r, c in zip(rows, predicted)],
            figures / "class-maps.png")


def checks_section(results: dict, predictions: list[dict], classes: list[str]) -> dict:
    """The section's values, its tables, and `draw_checks`, which draws its figures."""
    audit = audit_values(predictions)
    calibration = calibration_values(results, predictions)
    values = {"audit": audit, "calibration": calibration,
              "class_maps": class_map_values(predictions, classes)}
    values["check_tables"] = tables(audit, calibration)
    values["draw_checks"] = lambda figures: draw(values, predictions, classes, figures)
    return values
