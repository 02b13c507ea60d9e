"""The run the paper reports, read once from the files the pipeline wrote: a frozen `Run`.

Everything else in the paper is computed from it; nothing reads the run's files twice, and
nothing downstream can change what was read (mappings are read-only, lists are tuples).
"""

from __future__ import annotations

import csv
import platform
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import MappingProxyType

import numpy as np
import yaml

from transfer.data import cifar10
from transfer.data.arrays import SPLITS
from transfer.paper.experiments import Experiment, compared_runs, experiment_log, raw_params
from transfer.paper.notes import read_notes
from transfer.params.resolved import read_resolved, with_resolved
from transfer.params.whole import Params
from transfer.runtime.files import read_json
from transfer.runtime.paths import (
    CLASSES,
    DATASET,
    EVALUATION,
    FEATURES_METRICS,
    FINETUNE_LIVE,
    NOTES,
    PREDICTIONS,
    PREPARED,
    STAGE_TIMES,
    STUDY_RESULTS,
    SUMMARY,
    TRAIN_LIVE,
)

LIBRARIES = ("tensorflow", "keras", "numpy", "dvc", "dvclive", "matplotlib", "openvino")


def frozen(value: object) -> object:
    """`value` read-only all the way down: dicts as read-only mappings, lists as tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: frozen(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(frozen(item) for item in value)
    return value


@dataclass(frozen=True)
class Provenance:
    """Where the run came from: its commit, library versions, dvc.lock's hashes, params.yaml."""

    commit: str
    commit_date: str
    commit_day: str
    environment: Mapping[str, str]
    lock: tuple[tuple[str, str, str], ...]
    params_yaml: str


@dataclass(frozen=True)
class Run:
    """What the pipeline wrote for this run, `auto` params resolved (`requested`: as written)."""

    params: Params
    requested: Params
    dataset: str
    classes: tuple[str, ...]
    counts: Mapping[str, int]
    prepared: Mapping
    features: Mapping
    head_live: Mapping
    tune_live: Mapping
    tuning: Mapping  # how fine-tuning ran (`metrics/resolved/finetune.json`'s `how`)
    curves: Mapping  # phase ("head", "fine-tuning") -> metric -> "train" | "validation" -> (x, y)
    evaluation: Mapping
    predictions: tuple[Mapping[str, str], ...]
    minutes: float | None
    finetune_seconds: float | None
    notes: Mapping[str, str]
    study: Mapping | None
    experiments: tuple[Experiment, ...]
    provenance: Provenance

    @property
    def skipped(self) -> bool:
        """Whether fine-tuning was skipped (`finetune.layers` or `finetune.epochs` 0)."""
        return bool(self.tune_live.get("skipped"))

    @property
    def kept_head(self) -> bool:
        """Whether fine-tuning ran but never beat the head on validation, so the head is kept."""
        return self.tune_live.get("improved") is False

    @property
    def cached(self) -> bool:
        """Whether fine-tuning trained on the activation cache (the frozen bottom run once)."""
        return bool(self.tuning["cache_bytes"])

    @property
    def cifar10(self) -> bool:
        """Whether the classes are CIFAR-10's."""
        return self.classes == cifar10.CLASSES


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


def dataset_name(params: Params, classes: list[str] | tuple[str, ...]) -> str:
    """`data.name`; else CIFAR-10 for its classes (from Keras or any folder of them); else the
    folder's name without its archive suffix."""
    if params.data.name:
        return params.data.name
    if params.data.source == "cifar10" or tuple(classes) == cifar10.CLASSES:
        return "CIFAR-10"
    return re.sub(r"(\.tar\.gz|\.tgz|\.tar|\.zip)$", "", Path(params.data.path).name)


def provenance() -> Provenance:
    """The commit, its date, the library versions, dvc.lock's hashes and params.yaml."""
    lock = yaml.safe_load(Path("dvc.lock").read_text()) if Path("dvc.lock").is_file() else {}
    day = git("log", "-1", "--format=%cs")
    return Provenance(
        commit=git("rev-parse", "HEAD") or "not a git repository",
        commit_date=date.fromisoformat(day).strftime("%B %-d, %Y") if day else "undated",
        commit_day=day,
        environment=frozen({"python": platform.python_version(), "os": platform.system(),
                            **{name: package_version(name) for name in LIBRARIES}}),
        lock=tuple((stage, out["path"], out.get("md5", "")) for stage, entry in
                   lock.get("stages", {}).items() for out in entry.get("outs", [])),
        params_yaml=yaml.safe_dump(raw_params(), sort_keys=False).strip())


def load_run(params: Params) -> Run:
    """Read the run from the pipeline's files (in the working directory)."""
    classes = tuple(read_json(CLASSES))
    prepared = read_json(DATASET)
    head_live, tune_live = (read_json(live / "metrics.json") for live in (TRAIN_LIVE,
                                                                         FINETUNE_LIVE))
    curves = {"head": read_curves(TRAIN_LIVE)}
    if not tune_live.get("skipped"):
        curves["fine-tuning"] = read_curves(FINETUNE_LIVE)
    with PREDICTIONS.open() as f:
        predictions = list(csv.DictReader(f))
    study = read_json(STUDY_RESULTS) if STUDY_RESULTS.is_file() else None
    timed = STAGE_TIMES / "finetune.json"
    records = [read_resolved(stage) for stage in ("fetch", "train", "finetune")]
    return Run(
        params=with_resolved(params, records), requested=params, tuning=frozen(records[-1]["how"]),
        dataset=dataset_name(params, classes), classes=classes,
        counts=frozen({s: len(np.load(PREPARED / f"{s}_y.npy", mmap_mode="r")) for s in SPLITS}),
        prepared=frozen(prepared), features=frozen(read_json(FEATURES_METRICS)),
        head_live=frozen(head_live), tune_live=frozen(tune_live), curves=frozen(curves),
        evaluation=frozen(read_json(EVALUATION)), predictions=frozen(predictions),
        minutes=read_json(SUMMARY)["minutes"] if SUMMARY.is_file() else None,
        finetune_seconds=read_json(timed)["seconds"] if timed.is_file() else None,
        notes=frozen(read_notes(NOTES)), study=frozen(study),
        experiments=tuple(replace(e, values=frozen(e.values)) for e in compared_runs(
            experiment_log(),  # the study's runs: their own table
            [r["name"] for r in study["runs"]] if study else ())),
        provenance=provenance())
