"""Stage `report`: render the run as a journal-style paper, from the files the pipeline wrote.

Writes `report/paper.md` (Markdown, relative image links), `report/paper.html` (one
standalone file: CSS and images embedded), `report/medium.md` (tables as images, for editors
without Markdown tables) and `report/figures/*.png`. The text comes from the Jinja2
templates in `report/templates/` and the author's optional `report/notes.md`; every number in
it is read from the run's outputs, and the same inputs render to the same bytes.
"""

from __future__ import annotations

import base64
import csv
import itertools
import math
import platform
import re
import subprocess
from collections import Counter
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import jinja2
import markdown
import numpy as np
import yaml
from markupsafe import Markup

from transfer import engines, plots
from transfer.backbones import family, origin
from transfer.data import CIFAR10_CLASSES, SPLITS, load_split
from transfer.evaluate import METRICS as EVALUATION
from transfer.evaluate import PREDICTIONS
from transfer.experiments import Experiment, experiment_log, flatten, format_value, raw_params
from transfer.features import METRICS as FEATURES
from transfer.fetch import DESCRIPTION
from transfer.fetch import OUT as PREPARED
from transfer.finetune import LIVE as FINETUNE_LIVE
from transfer.params import Params, load_params
from transfer.runtime import UserError, atomic_path, read_json, run_stage
from transfer.train import LIVE as TRAIN_LIVE

OUT = Path("report")
TEMPLATES = OUT / "templates"
NOTES = OUT / "notes.md"
FIGURES = OUT / "figures"
PAPER, HTML, MEDIUM = OUT / "paper.md", OUT / "paper.html", OUT / "medium.md"
Z95 = 1.959963984540054
LIBRARIES = ("tensorflow", "keras", "numpy", "dvc", "dvclive", "matplotlib")
HYPERPARAMETERS = ("seed", "data.", "model.", "features.", "train.", "finetune.")


@dataclass(frozen=True)
class Table:
    """A captioned table; in the Medium variant it is shown as its picture `image`."""

    caption: str
    header: list[str]
    rows: list[list[str]]
    image: str


def wilson_interval(correct: int, count: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% for the default z)."""
    if count == 0:
        return 0.0, 1.0
    p, z2 = correct / count, z * z
    centre = (p + z2 / (2 * count)) / (1 + z2 / count)
    half = z * math.sqrt(p * (1 - p) / count + z2 / (4 * count * count)) / (1 + z2 / count)
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_p(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value of b vs c discordant pairs: Binomial(b + c, 1/2)."""
    n, term, tail = b + c, 1, 0
    for k in range(min(b, c) + 1):
        tail += term
        term = term * (n - k) // (k + 1)
    return min(1.0, float(Fraction(2 * tail, 2**n)))


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


def read_notes(path: Path) -> dict[str, str]:
    """The author's `## Section` texts from a Markdown file, HTML comments dropped; empty
    sections are left out."""
    if not path.is_file():
        return {}
    text = re.sub(r"<!--.*?-->", "", path.read_text(), flags=re.S)
    sections = re.split(r"^## +(.+?) *$", text, flags=re.M)[1:]
    return {title: body.strip() for title, body in zip(sections[::2], sections[1::2])
            if body.strip()}


def git(*args: str) -> str:
    """Output of a git command in the working directory, or '' outside a git repository."""
    out = subprocess.run(["git", *args], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def engine_sentence(features: str, test: str, prepare_seconds: float) -> str:
    """What ran the frozen network for the features and for the test-set pass (Methods)."""
    if features == test == "keras":
        return "Keras ran every pass."
    openvino = (f"OpenVINO {package_version('openvino')} (the Keras model converted, computing "
                f"in float32; outputs equal Keras's within a relative {engines.TOLERANCE:g})")
    names = {"keras": "Keras", "openvino": openvino}
    if features == test:
        uses = f"the feature extraction and the test-set pass ran on {names[features]}"
    else:
        uses = (f"the feature extraction ran on {names[features]}, the test-set pass on "
                f"{names[test]}")
    converted = (f"; converting the base for the features took {prepare_seconds:.1f} s, not "
                 f"counted in the extraction time" if features == "openvino" else "")
    return f"{uses[0].upper()}{uses[1:]}{converted}; training always ran on Keras."


def package_version(name: str) -> str:
    """The installed version of a distribution, or 'not installed'."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def dataset_name(params: Params) -> str:
    """CIFAR-10, or the folder's name without its archive suffix."""
    if params.data.source == "cifar10":
        return "CIFAR-10"
    return re.sub(r"(\.tar\.gz|\.tgz|\.tar|\.zip)$", "", Path(params.data.path).name)


def markdown_table(table: Table) -> str:
    """A pipe table, with pipes in cells escaped."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(table.header), "|" + "---|" * len(table.header),
                      *map(line, table.rows)])


def percent(x: float | None, digits: int = 1) -> str:
    """0.8734 -> '87.3%'; None -> '—'."""
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def points(x: float) -> str:
    """A difference of two proportions in percentage points: 0.012 -> '+1.2'."""
    return f"{100 * x:+.1f}"


def plural(n: int, noun: str) -> str:
    """'1 epoch', '3 epochs'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def p_value(p: float) -> str:
    """'p < 0.001' or 'p = 0.042'."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


class Citations:
    """The literature in `references.yaml`; `cite(key)` gives the in-text form and records it."""

    def __init__(self, path: Path) -> None:
        data = yaml.safe_load(path.read_text())
        self.references, self.backbones, self.used = data["references"], data["backbones"], []

    def __call__(self, key: str) -> str:
        """In-text citation of `key`, e.g. '(Pan and Yang, 2010)'."""
        if key not in self.references:
            raise UserError(f"{TEMPLATES}/references.yaml has no reference '{key}'")
        if key not in self.used:
            self.used.append(key)
        return f"({self.references[key]['cite']})"

    def backbone(self, backbone: str) -> str:
        """Citation of the backbone's own paper."""
        return self(self.backbones[family(backbone)])

    def cited(self) -> list[dict]:
        """The references cited so far, in alphabetical order."""
        return sorted((self.references[k] for k in self.used), key=lambda r: r["text"])


def experiments_table(log: list[Experiment], raw: dict, figures: Path) -> Table:
    """One row per experiment: name, changed params, validation and test accuracy, time."""
    baseline = next((e for e in log if e.baseline), log[-1])
    keys = [k for k in flatten(raw) if not k.startswith("report.")]
    rows = []
    for e in log:
        changed = "(baseline)" if e.baseline else e.changed_params(baseline, keys) or "none"
        seconds = e.metric(FEATURES, "seconds")
        rows.append([e.label, changed,
                     percent(e.metric(TRAIN_LIVE / "metrics.json", "best_val_accuracy")),
                     percent(e.metric(FINETUNE_LIVE / "metrics.json", "best_val_accuracy")),
                     percent(e.metric(EVALUATION, "head.accuracy")),
                     percent(e.metric(EVALUATION, "finetuned.accuracy")),
                     "—" if seconds is None else f"{seconds:.1f}"])
    plotted = [e for e in log if e.metric(FEATURES, "seconds") is not None
               and e.metric(EVALUATION, "finetuned.accuracy") is not None]
    plots.accuracy_vs_compute([e.label for e in plotted],
                              [e.metric(FEATURES, "seconds") for e in plotted],
                              [e.metric(EVALUATION, "head.accuracy") for e in plotted],
                              [e.metric(EVALUATION, "finetuned.accuracy") for e in plotted],
                              figures / "accuracy-vs-compute.png")
    header = ["experiment", "changed params", "val. acc. head", "val. acc. fine-tuned",
              "test acc. head", "test acc. fine-tuned", "feature extraction (s)"]
    return Table("The experiment log of this commit (`dvc exp show`): params that differ from "
                 "the baseline, best validation accuracy and test accuracy of both phases, and "
                 "the feature-extraction time.", header, rows, "table-experiments.png")


def title(params: Params, dataset: str) -> str:
    """The title from params, or one that says what was transferred and from where."""
    backbone = params.model.backbone
    if params.report.title:
        return params.report.title
    if params.model.weights == "none":
        return f"{backbone} on {dataset} with random weights: a pipeline check"
    source = "ImageNet" if params.model.weights == "imagenet" else "pretrained weights"
    return f"Transfer learning from {source} to {dataset} with {backbone}"


def augmentation(params: Params) -> str:
    """The fine-tuning augmentation in words."""
    a = params.finetune.augment
    parts = (["random horizontal flips"] if a.flip else []) + [
        f"random {name} up to {value:g}" for name, value in
        (("rotation", a.rotation), ("zoom", a.zoom), ("translation", a.translation)) if value]
    return ", ".join(parts) or "none"


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
    head_ok = [r["head_predicted"] == r["actual"] for r in predictions]
    tuned_ok = [r["predicted"] == r["actual"] for r in predictions]
    b = sum(h and not t for h, t in zip(head_ok, tuned_ok))
    c = sum(t and not h for h, t in zip(head_ok, tuned_ok))
    per_class = [results["finetuned"]["per_class_accuracy"][name] for name in classes]
    return {"results": results, "top_k": k,
            "gain": results["finetuned"]["accuracy"] - results["head"]["accuracy"],
            "mcnemar": {"b": b, "c": c, "p": mcnemar_p(b, c)},
            "best_class": max(zip(per_class, classes))[1],
            "worst_class": min(zip(per_class, classes))[1],
            "target_met": results["finetuned"]["accuracy"] >= params.report.target_accuracy}


def draw_test_figures(params: Params, classes: list[str], predictions: list[dict],
                      results: dict, figures: Path) -> dict:
    """The example grid, the most confident mistakes, the confusion matrix and per-class
    accuracy; returns the most confused pairs and the number of images shown."""
    x_test, _ = load_split(PREPARED, "test")
    ok = [r["predicted"] == r["actual"] for r in predictions]
    shown = np.sort(np.random.default_rng(params.seed).choice(
        len(predictions), min(params.report.examples, len(predictions)), replace=False))
    plots.image_grid(x_test[shown], [
        r["predicted"] if r["predicted"] == r["actual"]
        else f"{r['predicted']}\n(true: {r['actual']})" for r in (predictions[i] for i in shown)],
        [ok[i] for i in shown], figures / "examples.png")
    wrong = sorted((i for i in range(len(ok)) if not ok[i]),
                   key=lambda i: (-float(predictions[i]["confidence"]), i))[:16]
    if wrong:
        plots.image_grid(x_test[wrong], [
            f"{predictions[i]['actual']} → {predictions[i]['predicted']}\n"
            f"{percent(float(predictions[i]['confidence']), 0)}" for i in wrong],
            [False] * len(wrong), figures / "misclassified.png")
    index = {name: i for i, name in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for r in predictions:
        matrix[index[r["actual"]], index[r["predicted"]]] += 1
    plots.confusion_matrix(matrix, classes, figures / "confusion-matrix.png")
    head, tuned = ([results[m]["per_class_accuracy"][c] for c in classes]
                   for m in ("head", "finetuned"))
    plots.per_class_accuracy(classes, head, tuned, figures / "per-class-accuracy.png")
    pairs = Counter((r["actual"], r["predicted"]) for r in predictions
                    if r["actual"] != r["predicted"])
    return {"examples": len(shown), "misclassified": bool(wrong),
            "confused": sorted(pairs.items(), key=lambda item: (-item[1], item[0]))[:5]}


def draw_curves(figures: Path) -> dict:
    """Learning curves of both phases on one epoch axis, and how well each phase fits."""
    head_live, tune_live = (read_json(d / "metrics.json") for d in (TRAIN_LIVE, FINETUNE_LIVE))
    skipped = bool(tune_live.get("skipped"))
    phases = {"head": read_curves(TRAIN_LIVE)}
    if not skipped:
        phases["fine-tuning"] = read_curves(FINETUNE_LIVE)
    plots.learning_curves(phases, None if skipped else head_live["epochs"],
                          figures / "learning-curves.png")
    return {"head_live": head_live, "tune_live": tune_live, "skipped": skipped,
            "kept_head": tune_live.get("improved") is False,
            "fit": {name: phase_fit(curves) for name, curves in phases.items()}}


def tables(values: dict, predictions: list[dict], figures: Path) -> dict[str, Table]:
    """The paper's tables, each also drawn as a picture for the Medium variant."""
    raw = values["raw_params"]
    results, k, counts = values["results"], values["top_k"], values["counts"]
    actual = Counter(r["actual"] for r in predictions)
    found = {
        "hyperparameters": Table(
            "Hyper-parameters of this run (`params.yaml`).", ["parameter", "value"],
            [[key, f"`{format_value(v)}`"] for key, v in flatten(raw).items()
             if key.startswith(HYPERPARAMETERS)], "table-hyperparameters.png"),
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
        "experiments": experiments_table(values["experiments"], raw, figures),
    }
    for table in found.values():
        if table.rows:
            plots.table_image(table.header, table.rows, figures / table.image)
    return found


def provenance(raw: dict) -> dict:
    """Where the run came from: git commit and date, library versions, dvc.lock hashes."""
    lock = yaml.safe_load(Path("dvc.lock").read_text()) if Path("dvc.lock").is_file() else {}
    day = git("log", "-1", "--format=%cs")
    return {
        "commit": git("rev-parse", "HEAD") or "not a git repository",
        "commit_date": date.fromisoformat(day).strftime("%B %-d, %Y") if day else "undated",
        "environment": {"python": platform.python_version(), "os": platform.system(),
                        **{name: package_version(name) for name in LIBRARIES}},
        "lock": [(stage, out["path"], out.get("md5", "")) for stage, entry in
                 lock.get("stages", {}).items() for out in entry.get("outs", [])],
        "params_yaml": yaml.safe_dump(raw, sort_keys=False).strip(),
    }


def context(params: Params, figures: Path) -> dict:
    """Everything the templates show, read from the run's outputs; figures drawn on the way."""
    classes = read_json(PREPARED / "classes.json")
    with PREDICTIONS.open() as f:
        predictions = list(csv.DictReader(f))
    dataset, raw = dataset_name(params), raw_params()
    values = {
        "p": params, "title": title(params, dataset), "dataset": dataset, "classes": classes,
        "cifar10": tuple(classes) == CIFAR10_CLASSES, "augmentation": augmentation(params),
        "backbone_origin": origin(params.model.backbone),
        "counts": {s: len(np.load(PREPARED / f"{s}_y.npy", mmap_mode="r")) for s in SPLITS},
        "prepared": read_json(PREPARED / DESCRIPTION),
        "features": read_json(FEATURES), "experiments": experiment_log(),
        "notes": read_notes(NOTES), "raw_params": raw, **provenance(raw),
        **evaluation(params, classes, predictions), **draw_curves(figures),
    }
    values.update(draw_test_figures(params, classes, predictions, values["results"], figures))
    values["tables"] = tables(values, predictions, figures)
    values["date"] = params.report.date or values["commit_date"]
    return values


def render(values: dict, medium: bool) -> str:
    """The paper as Markdown; `medium` shows tables as pictures."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters.update(percent=percent, points=points, p_value=p_value, plural=plural,
                       count=lambda n: f"{n:,}")
    counters = {kind: itertools.count(1) for kind in ("figure", "table")}
    citations = Citations(TEMPLATES / "references.yaml")

    def table(t: Table) -> str:
        number = next(counters["table"])
        body = f"![Table {number}]({FIGURES.name}/{t.image})" if medium else markdown_table(t)
        return f"*Table {number}. {t.caption}*\n\n{body}"

    return env.get_template("paper.md.j2").render(
        **values, medium=medium, table=table, number=lambda kind: next(counters[kind]),
        engine_sentence=engine_sentence,
        cite=citations, citations=citations)


def standalone_html(paper: str, title: str, figures: Path) -> str:
    """The Markdown paper as one HTML file with the stylesheet and every figure embedded."""
    body = markdown.markdown(paper, extensions=["tables", "fenced_code", "sane_lists"])

    def embed(match: re.Match) -> str:
        data = base64.b64encode((figures / match.group(1)).read_bytes()).decode()
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(rf'src="{FIGURES.name}/([^"]+)"', embed, body)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    return env.get_template("paper.html.j2").render(
        title=title, body=Markup(body), css=Markup((TEMPLATES / "style.css").read_text()))


def main() -> None:
    """Draw the figures, render the paper in its three forms and write them atomically."""
    params = load_params()
    with atomic_path(FIGURES) as figures:
        figures.mkdir()
        values = context(params, figures)
        paper, medium = render(values, medium=False), render(values, medium=True)
        html = standalone_html(paper, values["title"], figures)
    for path, text in ((PAPER, paper), (MEDIUM, medium), (HTML, html)):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    print(f"report: {PAPER}, {HTML}, {MEDIUM} and {len(list(FIGURES.iterdir()))} figures")


if __name__ == "__main__":
    run_stage(main)
