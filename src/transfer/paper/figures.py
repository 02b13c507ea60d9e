"""Every figure of the paper, drawn from the run and what was computed from it (the values
hold no drawing code; this module holds nothing else)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from transfer.data.arrays import load_split
from transfer.models.calibration import reliability
from transfer.paper import charts
from transfer.paper.checks import Checks
from transfer.paper.comparison import Experiments, Study, label
from transfer.paper.findings import Findings
from transfer.paper.run import Run
from transfer.paper.wording import Table, percent
from transfer.runtime.paths import CLASS_MAPS, PREPARED

HERO = "hero.png"
EXPERIMENTS = "experiments.png"
STUDY = "study.png"


def title(r: Mapping[str, str]) -> str:
    """A test image's title: its predicted class, and the true one when that is wrong."""
    return r["predicted"] if r["predicted"] == r["actual"] else \
        f"{r['predicted']}\n(true: {r['actual']})"


def test_set(run: Run, found: Findings, x_test: np.ndarray, folder: Path) -> None:
    """The picture at the top, the examples, the mistakes, the confusion matrix and the
    per-class accuracy."""
    predictions, classes = run.predictions, run.classes
    ok = [r["predicted"] == r["actual"] for r in predictions]
    shown = list(found.shown)
    bars = [("frozen features", found.head)]
    if not (run.skipped or run.kept_head):
        if found.unflipped:
            bars.append(("fine-tuned", found.unflipped))
        bars.append(("+ test-time flips" if found.unflipped else "fine-tuned", found.tuned))
    charts.hero([name for name, _ in bars], [s.accuracy for _, s in bars],
                [s.ci for _, s in bars], x_test[shown[:8]],
                [title(predictions[i]) for i in shown[:8]], [ok[i] for i in shown[:8]],
                folder / HERO)
    charts.image_grid(x_test[shown], [title(predictions[i]) for i in shown],
                      [ok[i] for i in shown], folder / "examples.png")
    wrong = list(found.mistakes)
    if wrong:
        charts.image_grid(x_test[wrong], [
            f"{predictions[i]['actual']} → {predictions[i]['predicted']}\n"
            f"{percent(float(predictions[i]['confidence']))}" for i in wrong],
            [False] * len(wrong), folder / "misclassified.png", columns=4)
    index = {name: i for i, name in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for r in predictions:
        matrix[index[r["actual"]], index[r["predicted"]]] += 1
    charts.confusion_matrix(matrix, classes, folder / "confusion-matrix.png")
    charts.per_class_accuracy(classes, [found.head.per_class[c] for c in classes],
                              [found.tuned.per_class[c] for c in classes],
                              folder / "per-class-accuracy.png")


def checks(run: Run, checked: Checks, x: Mapping[str, np.ndarray], folder: Path) -> None:
    """The near-copies, reliability and class-map figures."""
    predictions = run.predictions
    closest = checked.audit["closest"]
    if closest:
        charts.image_pairs(
            [(x["test"][int(r["test_index"])], x[r["split"]][int(r["neighbour_index"])])
             for r in closest],
            [(f"test {r['test_index']}", f"{r['split']} {r['neighbour_index']}\n"
              f"{r['kind']}, r={float(r['pixel_correlation']):.2f}") for r in closest],
            folder / "near-copies.png")
    bins = {}
    for model, name, prefix in (("head", "head only", "head_"), ("finetuned", "fine-tuned", "")):
        right = np.array([r[f"{prefix}predicted"] == r["actual"] for r in predictions])
        bins[name] = {when: reliability(np.array([float(r[column]) for r in predictions]), right)
                      for when, column in (("before", f"{prefix}confidence"),
                                           ("after", f"{prefix}calibrated_confidence"))}
    charts.reliability(bins, folder / "reliability.png")
    with np.load(CLASS_MAPS) as found:  # mapped for the class each row of predictions has
        index, maps = found["index"], found["maps"]
    if len(index):
        rows = [predictions[i] for i in index]
        charts.class_maps(x["test"][index], maps, [title(r) for r in rows],
                          [r["predicted"] == r["actual"] for r in rows], folder / "class-maps.png")


def study(found: Study, folder: Path) -> None:
    """The study's figure: accuracy against the share of the data, else wall time."""
    runs = found.runs
    head = [run["head"]["accuracy"] for run in runs]
    tuned = [run["finetuned"]["accuracy"] for run in runs]
    if found.by_fraction:
        charts.accuracy_vs_fraction([run["fraction"] for run in runs], head, tuned,
                                   [run["this_paper"] for run in runs], folder / STUDY)
        return
    timed = [i for i, run in enumerate(runs) if run["minutes"] is not None]
    charts.accuracy_against([label(runs[i]) for i in timed], [runs[i]["minutes"] for i in timed],
                           charts.WALL_TIME, [head[i] for i in timed], [tuned[i] for i in timed],
                           folder / STUDY)


def experiments(found: Experiments, folder: Path) -> None:
    """Test accuracy of both phases of each run against the experiments' axis."""
    a = found.axis
    charts.accuracy_against(a.labels, a.x, a.label, a.head, a.tuned, folder / EXPERIMENTS)


def draw(run: Run, found: Findings, checked: Checks, studied: Study | None,
         compared: Experiments | None, folder: Path) -> None:
    """Every figure into `folder`."""
    charts.learning_curves(run.curves, None if run.skipped else run.head_live["epochs"],
                           folder / "learning-curves.png")
    x = {split: load_split(PREPARED, split)[0] for split in ("train", "val", "test")}
    test_set(run, found, x["test"], folder)
    checks(run, checked, x, folder)
    if studied:
        study(studied, folder)
    if compared:
        experiments(compared, folder)


def table_pictures(tables: Mapping[str, Table], markdown: str, folder: Path) -> None:
    """The tables that `markdown` (the Medium variant) shows as pictures, drawn into `folder`."""
    shown = set(re.findall(r"\]\(figures/(table-[^)]+\.png)\)", markdown))
    for table in tables.values():
        if table.image in shown:
            charts.table_image(table.header, table.rows, folder / table.image)

