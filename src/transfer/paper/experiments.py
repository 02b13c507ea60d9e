"""The DVC experiment log of the current commit, read through `dvc.api.exp_show`.

Each row is flat, as `dvc exp show` prints it: params under their dotted names and the headline
numbers of `metrics/summary.json` (the pipeline's only metrics file) under theirs. Any other
record of a run is read from the run itself (`Experiment.read`). When DVC cannot show
experiments (no git repository, say), the log is the current run alone, read from its files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from transfer.runtime.files import read_json
from transfer.runtime.paths import PARAMS, SUMMARY

TEST_SET_KEYS = ("seed", "data.source", "data.path", "data.test_folder", "data.test_split")


@dataclass(frozen=True)
class Experiment:
    """One row of the log: its name, its role, and its flat values."""

    name: str
    values: Mapping
    current: bool = False
    baseline: bool = False

    @property
    def label(self) -> str:
        """The name, marked when the row is this run."""
        return f"{self.name} (this run)" if self.current and self.name != "this run" else self.name

    @property
    def rev(self) -> str:
        """The git revision that holds the run's outputs (`workspace` for this run)."""
        return "workspace" if self.current else self.values["rev"]

    def metric(self, key: str) -> float | None:
        """A headline number (a key of metrics/summary.json), whichever way DVC flattened its
        name; None if absent (DVC shows '!' or '-' for a metric a commit lacks)."""
        value = self.values.get(f"{SUMMARY}:{key}", self.values.get(key))
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    @property
    def finished(self) -> bool:
        """Whether the run has test results of its own: not queued, running or failed (DVC
        shows a failed queued run with the metrics of the commit it started from)."""
        return self.values.get("State") not in ("Queued", "Running", "Failed") and \
            self.metric("test_acc") is not None

    def read(self, path: Path | str) -> str:
        """One of the run's files as text (`read_at`)."""
        return read_at(path, self.rev)

    def param(self, key: str) -> str:
        """A param's value as a user would type it."""
        return format_value(self.values.get(key))


def read_at(path: Path | str, rev: str, mode: str = "r") -> str | bytes:
    """A file of a run: from the workspace for `workspace`, else from commit `rev` (DVC's
    cache for cached outputs, git for the rest) of the repository DVC runs from."""
    if rev == "workspace":
        return Path(path).read_text() if mode == "r" else Path(path).read_bytes()
    import dvc.api

    return dvc.api.read(str(path), rev=rev, mode=mode, repo=os.environ.get("DVC_ROOT"))


def same_test_set(params: tuple[dict, dict], actual: tuple[list[str], list[str]]) -> bool:
    """Whether two runs scored the same test images: their flat params that choose the test
    set are equal, and so are their true classes, image by image."""
    first, second = params
    return (all(format_value(first.get(k)) == format_value(second.get(k)) for k in TEST_SET_KEYS)
            and actual[0] == actual[1])


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


def run_params() -> list[str]:
    """The params a run is told apart by, dotted: all but `report.*`, which only words it."""
    return [key for key in flatten(raw_params()) if not key.startswith("report.")]


def current_run() -> dict:
    """This run's params and headline numbers, flattened as `dvc exp show` would."""
    row = flatten(raw_params())
    if SUMMARY.is_file():
        row.update({f"{SUMMARY}:{k}": v for k, v in flatten(read_json(SUMMARY)).items()})
    return row


def experiment_log() -> list[Experiment]:
    """The baseline commit first, then its finished experiments, then this run.

    This run keeps its experiment name when it is one: inside `dvc exp run` (where DVC lists
    it twice, as `workspace` and under its name) and after it (when its results are applied
    to the workspace). Outside a git repository, or before its first commit, the log is this
    run alone.
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
        if current:
            row = {**row, **current_run()}
        log.append(Experiment(name, row, current=current,
                              baseline=not (current or row["Experiment"])))
    log = [e for e in log if e.current or e.baseline or e.finished]
    return sorted(merge_current(log), key=lambda e: (e.current, not e.baseline))


def merge_current(log: list[Experiment]) -> list[Experiment]:
    """Name this run after the run (an experiment, or the baseline commit with its results)
    whose params and results it has, if any, and list that run once. The minutes are not
    compared: a stage restored from the run cache has the same results but may have run
    again (`fetch`)."""
    keys = [k for k in current_run() if not k.endswith(":minutes")]

    def results(e: Experiment) -> list:
        """The run's values of `keys`; text as a user types it (DVC gives a commit's booleans
        and nulls as 'True' and 'None'), numbers as they are."""
        values = (e.values.get(k, e.values.get(k.split(":")[-1])) for k in keys)
        return [v if isinstance(v, int | float) and not isinstance(v, bool) else format_value(v)
                for v in values]

    current = next(e for e in log if e.current)
    if current.name != "this run" or current.metric("test_acc") is None:
        return log
    same = next((e for e in log if not e.current and e.finished
                 and results(e) == results(current)), None)
    if same is None:
        return log
    renamed = Experiment(same.name, current.values, current=True, baseline=same.baseline)
    return [renamed if e is current else e for e in log if e is not same]


def compared_runs(log: list[Experiment], excluded: Iterable[str] = ()) -> list[Experiment]:
    """The runs of the log that have test results, but those named in `excluded` (the
    study's, which have their own table) other than this run; worth a table only when there
    are two or more."""
    skip = set(excluded)
    return [e for e in log if e.finished and (e.current or e.name not in skip)]


def varying_params(runs: list[Experiment], keys: Iterable[str]) -> list[str]:
    """The params among `keys` whose value is not the same in every run."""
    return [k for k in keys if len({e.param(k) for e in runs}) > 1]
