"""The DVC experiment log of the current commit, read through `dvc.api.exp_show`.

Each row is flat, as `dvc exp show` prints it: params under their dotted names, metrics under
their name, or `<file>:<name>` where two metrics files share a name. When DVC cannot show
experiments (no git repository, say), the log is the current run alone, read from its files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from transfer.paths import (
    EVALUATION,
    FEATURES_METRICS,
    FINETUNE_LIVE,
    PARAMS,
    STAGE_TIMES,
    TRAIN_LIVE,
)
from transfer.runtime import read_json

RUN_STAGES = ("fetch", "features", "train", "finetune", "evaluate")  # a run's wall time
METRICS_FILES = (FEATURES_METRICS, TRAIN_LIVE / "metrics.json", FINETUNE_LIVE / "metrics.json",
                 EVALUATION, *(STAGE_TIMES / f"{stage}.json" for stage in RUN_STAGES))


@dataclass(frozen=True)
class Experiment:
    """One row of the log: its name, its role, and its flat values."""

    name: str
    values: dict
    current: bool = False
    baseline: bool = False

    @property
    def label(self) -> str:
        """The name, marked when the row is this run."""
        return f"{self.name} (this run)" if self.current and self.name != "this run" else self.name

    def metric(self, path: Path | str, key: str) -> float | None:
        """A metric of one file, whichever way DVC flattened its name; None if absent (DVC
        shows '!' for a metric a commit lacks)."""
        value = self.values.get(f"{path}:{key}", self.values.get(key))
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    @property
    def finished(self) -> bool:
        """Whether the run has test results of its own: not queued, running or failed (DVC
        shows a failed queued run with the metrics of the commit it started from)."""
        return self.values.get("State") not in ("Queued", "Running", "Failed") and \
            self.metric(EVALUATION, "finetuned.accuracy") is not None

    def seconds(self) -> float | None:
        """Wall time of the run, fetch to evaluate (each stage's `metrics/time`); None if a
        stage's is missing."""
        times = [self.metric(STAGE_TIMES / f"{stage}.json", "seconds") for stage in RUN_STAGES]
        return None if None in times else round(sum(times), 1)

    def changed_params(self, baseline: Experiment, keys: Iterable[str]) -> str:
        """`key=value` for each param in `keys` whose value differs from the baseline's."""
        return ", ".join(f"{k}={format_value(self.values.get(k))}" for k in keys
                         if self.values.get(k) != baseline.values.get(k))


def format_value(value: object) -> str:
    """A param value as a user would type it (DVC shows integers as floats, None as 'None')."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:g}"
    if value is None or isinstance(value, bool):
        value = str(value)
    return {"None": "null", "True": "true", "False": "false"}.get(value, str(value))


def flatten(data: dict, prefix: str = "") -> dict:
    """Nested mappings as one mapping with dotted keys."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def raw_params() -> dict:
    """params.yaml as written, untyped (for showing it, not for running on it)."""
    return yaml.safe_load(PARAMS.read_text())


def current_run() -> dict:
    """This run's params and metrics, flattened as `dvc exp show` would (every metric prefixed)."""
    row = flatten(raw_params())
    for path in METRICS_FILES:
        if path.is_file():
            row.update({f"{path}:{k}": v for k, v in flatten(read_json(path)).items()})
    return row


def experiment_log() -> list[Experiment]:
    """The baseline commit first, then its experiments, then this run.

    This run keeps its experiment name when it is one: inside `dvc exp run` (where DVC lists
    it twice, as `workspace` and under its name) and after it (when its results are applied
    to the workspace). Experiments without test results (queued or
    failed) are left out. Outside a git repository the log is this run alone.
    """
    import dvc.api
    from dvc.exceptions import DvcException
    from scmrepo.exceptions import SCMError

    try:
        rows = dvc.api.exp_show()
    except (DvcException, SCMError):
        return [Experiment("this run", current_run(), current=True)]
    running = any(r["rev"] == "workspace" and r["Experiment"] for r in rows)
    log = []
    for row in rows:
        current = row["rev"] == "workspace"
        if current and running and not row["Experiment"]:
            continue
        name = row["Experiment"] or ("this run" if current else row["rev"])
        log.append(Experiment(name, row, current=current,
                              baseline=not (current or row["Experiment"])))
    log = [e for e in log if e.current or e.baseline or e.finished]
    return sorted(merge_current(log), key=lambda e: (e.current, not e.baseline))


def merge_current(log: list[Experiment]) -> list[Experiment]:
    """Name this run after the experiment whose params and metrics it has, if any, and list
    that experiment once. The stages' times are not compared: a stage restored from the run
    cache has the same results but may have run again (`fetch`)."""
    keys = list(dict.fromkeys(n for key in current_run() if not key.startswith(str(STAGE_TIMES))
                              for n in (key, key.split(":")[-1])))

    def results(e: Experiment) -> list:
        return [e.values.get(k) for k in keys]

    current = next(e for e in log if e.current)
    if current.name != "this run":
        return log
    same = next((e for e in log if not e.current and not e.baseline
                 and results(e) == results(current)), None)
    if same is None:
        return log
    renamed = Experiment(same.name, current.values, current=True)
    return [renamed if e is current else e for e in log if e is not same]
