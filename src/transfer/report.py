"""Stage `report`: render the run as a journal-style paper, from the files the pipeline wrote.

Writes `report/paper.md` (Markdown, relative image links) and `report/figures/*.png`, and from
that Markdown: `report/paper.pdf` (typeset with Typst, `transfer.paper.typeset`),
`report/paper.html` (one standalone file), `report/site/` (a page and its PNG files for a
static host or Medium's import), `report/devto.md` (dev.to / Hashnode)
(`transfer.paper.publish`), and `report/medium.md` (tables as images, for editors without
Markdown tables). The text comes from the Jinja2
templates in `report/templates/` and the author's optional `report/notes.md`; every number in
it is read from the run's outputs, and the same inputs render to the same bytes.
"""

from __future__ import annotations

import csv
import platform
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import yaml

from transfer.data import cifar10
from transfer.data.arrays import SPLITS, load_split
from transfer.paper import charts, publish, typeset
from transfer.paper.checks import checks_section
from transfer.paper.comparison import study_section
from transfer.paper.experiments import (
    Experiment,
    compared_runs,
    experiment_log,
    format_value,
    raw_params,
    run_params,
    varying_params,
)
from transfer.paper.notes import read_notes
from transfer.paper.stats import discordant, mcnemar_p, wilson_interval
from transfer.paper.wording import Table, origin, percent, render, size
from transfer.params.whole import Params, load_params
from transfer.runtime.files import atomic_path, read_json
from transfer.runtime.paths import (
    CLASSES,
    DATASET,
    DEVTO,
    EVALUATION,
    FEATURES_METRICS,
    FIGURES,
    FINETUNE_LIVE,
    HTML,
    MEDIUM,
    NOTES,
    PAPER,
    PDF,
    PREDICTIONS,
    PREPARED,
    REPORT,
    SITE,
    TEMPLATES,
    TRAIN_LIVE,
)
from transfer.runtime.stage import run_stage

LIBRARIES = ("tensorflow", "keras", "numpy", "dvc", "dvclive", "matplotlib", "openvino")
USED = {  # the params Methods lists, with the values the run used (`auto` resolved)
    "data": ("fraction", "val_split", "image_size", "resize"),
    "model": ("backbone", "weights", "input_size", "cut_layer"),
    "train": ("epochs", "batch_size", "learning_rate", "dropout", "hidden_units", "patience"),
    "finetune": ("layers", "epochs", "batch_size", "learning_rate", "weight_decay", "warmup",
                 "bottom_rate", "label_smoothing", "start_size", "augment"),
    "evaluate": ("flip", "calibrate"),
    "audit": ("candidates", "max_shift", "min_correlation", "min_cosine")}
EXPERIMENTS_FIGURE = "experiments.png"


def read_curves(live: Path) -> dict[str, dict[str, tuple[list[int], list[float]]]]:
    """DVCLive's per-epoch accuracy and loss: {metric: {"train" | "validation": (steps, y)}}."""
    curves: dict = {}
    for split, name in (("train", "train"), ("eval", "validation")):
        for tsv in sorted((live / "plots" / "metrics" / split).glob("*.tsv")):
            with tsv.open() as f:
                rows = list(csv.DictReader(f, delimiter="\t"))
            curves.setdefault(tsv.stem, {})[name] = (
                [int(r["step"]) for r in rows], [float(r[tsv.stem]) for r in rows])
    return curves


def git(*args: str) -> str:
    """Output of a git command in the working directory, or '' outside a git repository."""
    out = subprocess.run(["git", *args], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def package_version(name: str) -> str:
    """The installed version of a distribution, or 'not installed'."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def dataset_name(params: Params, classes: list[str]) -> str:
    """`data.name`; else CIFAR-10 for its classes (from Keras or any folder of them); else the
    folder's name without its archive suffix."""
    if params.data.name:
        return params.data.name
    if params.data.source == "cifar10" or tuple(classes) == cifar10.CLASSES:
        return "CIFAR-10"
    return re.sub(r"(\.tar\.gz|\.tgz|\.tar|\.zip)$", "", Path(params.data.path).name)


def experiments_table(runs: list[Experiment]) -> tuple[Table, str, Callable[[Path], None],
                                                      tuple[float, float]]:
    """One row per run: its name, the params that differ between the runs, validation and test
    accuracy of both phases, wall time; the figure's x axis in words (the one param the runs
    vary when it is a number, else wall time), what draws the figure into a folder, and the
    lowest and highest fine-tuned test accuracy it plots."""
    varying = varying_params(runs, run_params())
    rows = [[e.label, ", ".join(f"{k}={e.param(k)}" for k in varying) or "none",
             *(percent(e.metric(key)) for key in ("val_acc_head", "val_acc", "test_acc_head",
                                                  "test_acc")),
             "—" if e.metric("minutes") is None else f"{e.metric('minutes'):.1f}"]
            for e in runs]
    numbers = [as_number(e.values.get(varying[0])) for e in runs] if len(varying) == 1 else []
    if numbers and None not in numbers:
        plotted, x, axis, label = runs, numbers, f"the value of {varying[0]}", varying[0]
    else:
        plotted = [e for e in runs if e.metric("minutes") is not None]
        x, axis, label = ([e.metric("minutes") for e in plotted], "its wall time from fetch to "
                          "evaluate", charts.WALL_TIME)

    def draw(figures: Path) -> None:
        """Test accuracy of both phases against the x axis."""
        charts.accuracy_against([e.label for e in plotted], x, label,
                               [e.metric("test_acc_head") for e in plotted],
                               [e.metric("test_acc") for e in plotted],
                               figures / EXPERIMENTS_FIGURE)
    header = ["run", "params that differ", "val. acc. head", "val. acc. fine-tuned",
              "test acc. head", "test acc. fine-tuned", "wall time (min)"]
    return Table("The runs of this commit that have test results (`dvc exp show`): the params "
                 "in which they differ, best validation accuracy and test accuracy of both "
                 "phases, and each run's wall time from fetch to evaluate.", header, rows,
                 "table-experiments.png"), axis, draw, accuracy_range(plotted)


def accuracy_range(runs: list[Experiment]) -> tuple[float, float]:
    """The lowest and highest fine-tuned test accuracy of `runs` (0, 0 when none has one)."""
    tested = [a for a in (e.metric("test_acc") for e in runs) if a is not None] or [0.0]
    return min(tested), max(tested)


def as_number(value: object) -> float | None:
    """A param value as a number, or None if it is not one (`auto`, a path, a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def title(params: Params, dataset: str) -> str:
    """The title from params, or one that says what was transferred and from where."""
    backbone = params.model.backbone
    if params.report.title:
        return params.report.title
    if params.model.weights == "none":
        return f"{backbone} on {dataset} with random weights: a pipeline check"
    source = "ImageNet" if params.model.weights == "imagenet" else "pretrained weights"
    return f"Transfer learning from {source} to {dataset} with {backbone}"


def as_run(params: Params, prepared: dict, head: dict, finetuned: dict) -> Params:
    """`params` with each `auto` replaced by the value its stage recorded for this run:
    `fetch` the input size (`prepared`), `train` its batch (`head`), `finetune` the rest."""
    tuned = {key: finetuned[key] for key in ("layers", "batch_size", "learning_rate")
             if key in finetuned}
    return params.model_copy(update={
        "model": params.model.model_copy(update={"input_size": prepared["input_size"]}),
        "train": params.train.model_copy(update={"batch_size": head["batch_size"]}),
        "finetune": params.finetune.model_copy(update={
            **tuned, "augment": params.finetune.augment.model_copy(
                update=finetuned.get("augment", {}))})})


def parameters_table(run: Params, prepared: dict) -> Table:
    """One row per section: the values this run used, `auto` resolved, unset ones left out."""
    rows = [["seed", str(run.seed)]]
    for section, keys in USED.items():
        values = getattr(run, section)
        shown = {key: getattr(values, key) for key in keys}
        if section == "data":
            shown["image_size"] = prepared["image_size"]
        if section == "finetune":
            shown["augment"] = augmentation(run)
        rows.append([section, ", ".join(f"{key} {format_value(value)}"
                                        for key, value in shown.items() if value is not None)])
    return Table("The values this run used: the params that shape the result, each `auto` "
                 "resolved (the full `params.yaml` closes the paper).", ["section", "values"],
                 rows, "table-parameters.png")


def augmentation(params: Params) -> str:
    """The fine-tuning augmentation in words."""
    f = params.finetune
    a = f.augment
    parts = (["random horizontal flips"] if a.flip else []) + [
        f"random {name} up to {value:g}" for name, value in
        (("rotation", a.rotation), ("zoom", a.zoom), ("translation", a.translation)) if value]
    cached = f.cacheable and f.layers != "all" and isinstance(a.views, int)
    return ", ".join(parts) + (f" ({a.views} cached views)" if cached and parts else "") \
        or "none"


def phase_fit(curves: dict) -> dict | None:
    """Last-epoch training and validation accuracy of a phase, their gap, and whether
    validation accuracy was still rising: the last epoch strictly better than all before."""
    acc = curves.get("accuracy", {})
    if "train" not in acc or "validation" not in acc:
        return None
    train, val = acc["train"][1], acc["validation"][1]
    return {"epochs": len(val), "train": train[-1], "validation": val[-1],
            "gap": train[-1] - val[-1], "improving": len(val) > 1 and val[-1] > max(val[:-1])}


def evaluation(params: Params, classes: list[str], predictions: list[dict]) -> dict:
    """Both models' test scores with Wilson intervals, and McNemar's test on their pairs."""
    results = read_json(EVALUATION)
    k = min(params.evaluate.top_k, len(classes))
    for scores in results.values():
        scores["ci"] = wilson_interval(scores["correct"], scores["count"])
        scores["top_k"] = scores[f"top_{k}_accuracy"]
    b, c = map(len, discordant([r["head_predicted"] == r["actual"] for r in predictions],
                               [r["predicted"] == r["actual"] for r in predictions]))
    per_class = [results["finetuned"]["per_class_accuracy"][name] for name in classes]
    return {"results": results, "top_k": k,
            "gain": results["finetuned"]["accuracy"] - results["head"]["accuracy"],
            "mcnemar": {"b": b, "c": c, "p": mcnemar_p(b, c)},
            "best_class": max(zip(per_class, classes))[1],
            "worst_class": min(zip(per_class, classes))[1],
            "target_met": results["finetuned"]["accuracy"] >= params.report.target_accuracy}


def test_figures(params: Params, classes: list[str], predictions: list[dict],
                 results: dict) -> dict:
    """What the test-set figures show: the example grid's images, the most confident
    mistakes, the confusion matrix, per-class accuracy; the most confused pairs."""
    ok = [r["predicted"] == r["actual"] for r in predictions]
    shown = np.sort(np.random.default_rng(params.seed).choice(
        len(predictions), min(params.report.examples, len(predictions)), replace=False))
    wrong = sorted((i for i in range(len(ok)) if not ok[i]),
                   key=lambda i: (-float(predictions[i]["confidence"]), i))[:16]
    index = {name: i for i, name in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for r in predictions:
        matrix[index[r["actual"]], index[r["predicted"]]] += 1
    pairs = Counter((r["actual"], r["predicted"]) for r in predictions
                    if r["actual"] != r["predicted"])
    sure = [float(predictions[i]["confidence"]) for i in wrong]
    return {"examples": len(shown), "examples_right": sum(ok[i] for i in shown),
            "misclassified": bool(wrong), "mistakes_shown": len(wrong),
            "mistake_confidence": (min(sure), max(sure)) if sure else (0.0, 0.0),
            "confused": sorted(pairs.items(), key=lambda item: (-item[1], item[0]))[:5],
            "test_figures": {"ok": ok, "shown": shown, "wrong": wrong, "matrix": matrix}}


def draw_test_figures(values: dict, predictions: list[dict], figures: Path) -> None:
    """Draw the figures `test_figures` describes into `figures`."""
    x_test, _ = load_split(PREPARED, "test")
    t, classes, results = values["test_figures"], values["classes"], values["results"]
    ok, shown, wrong = t["ok"], t["shown"], t["wrong"]
    charts.image_grid(x_test[shown], [
        r["predicted"] if r["predicted"] == r["actual"]
        else f"{r['predicted']}\n(true: {r['actual']})" for r in (predictions[i] for i in shown)],
        [ok[i] for i in shown], figures / "examples.png")
    if wrong:
        charts.image_grid(x_test[wrong], [
            f"{predictions[i]['actual']} → {predictions[i]['predicted']}\n"
            f"{percent(float(predictions[i]['confidence']), 0)}" for i in wrong],
            [False] * len(wrong), figures / "misclassified.png")
    charts.confusion_matrix(t["matrix"], classes, figures / "confusion-matrix.png")
    head, tuned = ([results[m]["per_class_accuracy"][c] for c in classes]
                   for m in ("head", "finetuned"))
    charts.per_class_accuracy(classes, head, tuned, figures / "per-class-accuracy.png")


def curves() -> dict:
    """Both phases' curves and summaries, and how well each phase fits."""
    head_live, tune_live = (read_json(d / "metrics.json") for d in (TRAIN_LIVE, FINETUNE_LIVE))
    skipped = bool(tune_live.get("skipped"))
    phases = {"head": read_curves(TRAIN_LIVE)}
    if not skipped:
        phases["fine-tuning"] = read_curves(FINETUNE_LIVE)
    return {"head_live": head_live, "tune_live": tune_live, "skipped": skipped,
            "kept_head": tune_live.get("improved") is False, "phases": phases,
            "fit": {name: phase_fit(curves) for name, curves in phases.items()}}


def tables(values: dict, predictions: list[dict]) -> dict[str, Table]:
    """The paper's tables (each also drawn as a picture, for the Medium variant)."""
    results, k, counts = values["results"], values["top_k"], values["counts"]
    actual = Counter(r["actual"] for r in predictions)
    found = {
        "parameters": parameters_table(values["p"], values["prepared"]),
        "results": Table(
            f"Test-set results ({counts['test']:,} images) of the head alone and of the "
            f"fine-tuned model. The interval is Wilson's 95% score interval.",
            ["model", "test accuracy", "95% CI", "loss", f"top-{k} accuracy", "correct"],
            [[label, percent(s["accuracy"]),
              f"{percent(s['ci'][0])} – {percent(s['ci'][1])}", f"{s['loss']:.3f}",
              percent(s["top_k"]), f"{s['correct']:,} / {s['count']:,}"]
             for label, s in (("head only", results["head"]),
                              ("fine-tuned", results["finetuned"]))],
            "table-results.png"),
        "confused": Table(
            "The most frequent confusions of the fine-tuned model on the test set.",
            ["true class", "predicted as", "images", "share of the class"],
            [[a, p, f"{n:,}", percent(n / actual[a])] for (a, p), n in values["confused"]],
            "table-confused.png"),
    }
    if len(values["experiments"]) > 1:  # else nothing to compare
        (found["experiments"], values["experiments_axis"], values["draw_experiments"],
         values["experiments_range"]) = experiments_table(values["experiments"])
    if values["study"]:
        found["study"] = values["study"]["table"]
    return found | values["check_tables"]


def draw_figures(values: dict, predictions: list[dict], figures: Path) -> None:
    """Every figure of the paper, and every table as a picture, into `figures`."""
    charts.learning_curves(values["phases"], None if values["skipped"] else
                           values["head_live"]["epochs"], figures / "learning-curves.png")
    draw_test_figures(values, predictions, figures)
    for draw in (values.get("draw_experiments"), values["study"] and values["study"]["draw"],
                 values["draw_checks"]):
        if draw:
            draw(figures)
    for table in values["tables"].values():
        if table.rows:
            charts.table_image(table.header, table.rows, figures / table.image)


def provenance(raw: dict) -> dict:
    """Where the run came from: git commit and date, library versions, dvc.lock hashes."""
    lock = yaml.safe_load(Path("dvc.lock").read_text()) if Path("dvc.lock").is_file() else {}
    day = git("log", "-1", "--format=%cs")
    return {
        "commit": git("rev-parse", "HEAD") or "not a git repository",
        "commit_date": date.fromisoformat(day).strftime("%B %-d, %Y") if day else "undated",
        "commit_day": day,
        "environment": {"python": platform.python_version(), "os": platform.system(),
                        **{name: package_version(name) for name in LIBRARIES}},
        "lock": [(stage, out["path"], out.get("md5", "")) for stage, entry in
                 lock.get("stages", {}).items() for out in entry.get("outs", [])],
        "params_yaml": yaml.safe_dump(raw, sort_keys=False).strip(),
    }


def context(params: Params, predictions: list[dict]) -> dict:
    """Everything the templates show, read from the run's outputs (`predictions`: the test
    set's, as `evaluate` wrote them)."""
    classes = read_json(CLASSES)
    dataset, raw = dataset_name(params, classes), raw_params()
    prepared = read_json(DATASET)
    counts = {s: len(np.load(PREPARED / f"{s}_y.npy", mmap_mode="r")) for s in SPLITS}
    finetuned = read_json(FINETUNE_LIVE / "metrics.json")
    run = as_run(params, prepared, read_json(TRAIN_LIVE / "metrics.json"), finetuned)
    study = study_section()
    values = {
        "p": run, "auto": {"input_size": params.model.input_size == "auto",
                           "finetune": "auto" in (params.finetune.batch_size,
                                                  params.finetune.learning_rate),
                           "native": prepared["native_size"],
                           "layers": finetuned.get("cached_stride") is not None,
                           "cached_stride": finetuned.get("cached_stride"),
                           "thumbnail_scale": prepared["thumbnail_scale"]},
        "title": title(params, dataset), "dataset": dataset, "classes": classes,
        "cifar10": tuple(classes) == cifar10.CLASSES, "augmentation": augmentation(run),
        "translation_pixels": finetuned.get("translation_pixels"),
        "cache_size": size(finetuned.get("cache_bytes", 0)),
        "resolution_schedule": finetuned.get("input_sizes") or [],
        "backbone_origin": origin(params.model.backbone),
        "counts": counts, "prepared": prepared,
        "features": read_json(FEATURES_METRICS), "study": study,
        "experiments": compared_runs(experiment_log(),  # the study's runs: their own table
                                     study["names"] if study else ()),
        "notes": read_notes(NOTES), "raw_params": raw, **provenance(raw),
        **evaluation(params, classes, predictions), **curves(),
    }
    values.update(test_figures(params, classes, predictions, values["results"]))
    values.update(checks_section(values["results"], predictions, classes))
    values["tables"] = tables(values, predictions)
    values["date"] = params.report.date or values["commit_date"]
    return values


def description(values: dict) -> str:
    """`report.description`, or one sentence of what the run found."""
    p, results = values["p"], values["results"]
    if p.report.description:
        return p.report.description
    return (f"{p.model.backbone} transferred to {values['dataset']}: "
            f"{percent(results['finetuned']['accuracy'])} test accuracy after fine-tuning, "
            f"{percent(results['head']['accuracy'])} for a head on the frozen base's features.")


def paper_date(params: Params, commit_day: str) -> date | None:
    """The day the PDF is dated: `report.date` if it is an ISO date, else the commit's."""
    for text in (params.report.date, commit_day):
        try:
            return date.fromisoformat(text)
        except ValueError:
            continue
    return None


def main() -> None:
    """Gather the run's values, draw the figures, render the paper in all its forms and write
    them atomically."""
    params = load_params()
    with PREDICTIONS.open() as f:
        predictions = list(csv.DictReader(f))
    values = context(params, predictions)
    with atomic_path(FIGURES) as figures:
        figures.mkdir()
        draw_figures(values, predictions, figures)
        paper, medium = (render(values, TEMPLATES, medium) for medium in (False, True))
        title, summary = values["title"], description(values)
        day = paper_date(params, values["commit_day"])
        source = typeset.typst_source(paper, {**values, "pdf_date": day}, TEMPLATES,
                                      figures.name)
        body = publish.html_body(paper)
        texts = {PAPER: paper, MEDIUM: medium,
                 HTML: publish.page(body, title, summary, TEMPLATES, figures, embed=True),
                 DEVTO: publish.devto(paper, title, summary, params.report)}
        pdf = typeset.pdf(source, REPORT, day)
        site = publish.page(body, title, summary, TEMPLATES, figures, embed=False,
                            canonical=params.report.site_url)
        with atomic_path(SITE) as tmp:
            publish.write_site(site, figures, tmp)
    for path, text in texts.items():
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    with atomic_path(PDF) as tmp:
        tmp.write_bytes(pdf)
    print(f"report: {PAPER}, {PDF}, {HTML}, {SITE}/, {MEDIUM}, {DEVTO} and "
          f"{len(list(FIGURES.iterdir()))} figures")


if __name__ == "__main__":
    run_stage(main)  # its time is printed, not recorded: metrics/time holds the run's stages
