"""The study: a named set of runs declared in study/runs.yaml, run as DVC experiments.

    python -m transfer.study [--jobs N] [--force]

Each run is params.yaml with the run's overrides (`dotted.key: value`). It is queued with
`dvc exp run --queue --name <run> -S key=value summary` and run by DVC's queue (`dvc exp run
--run-all --jobs N`), so the runs are ordinary experiments of the current commit, and stages
whose inputs were run before come out of DVC's run cache. A run whose experiment already
exists with the same params and results is not queued again (`--force` recomputes every run);
one whose params changed is removed and queued afresh. Then the runs' results are gathered
into study/results.json (rewritten only when they change) and `dvc repro` renders the paper
with them: rerunning with nothing changed recomputes nothing.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import yaml

from transfer.paper.experiments import Experiment, flatten, format_value, same_test_set
from transfer.paper.stats import discordant
from transfer.params.overrides import merged, nested
from transfer.params.whole import parse_params
from transfer.runtime.errors import ParamError, UserError
from transfer.runtime.files import atomic_path
from transfer.runtime.paths import EVALUATION, PARAMS, PREDICTIONS, STUDY_RESULTS, STUDY_RUNS
from transfer.runtime.stage import run_stage

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")  # a DVC experiment name (a git ref part)


def load_study(raw_params: dict) -> dict[str, dict]:
    """The runs of study/runs.yaml, `{name: {dotted key: value}}`, each checked as params.yaml
    with its overrides would be; raise UserError naming the file and run on a problem."""
    if not STUDY_RUNS.is_file():
        raise UserError(f"{STUDY_RUNS} not found: declare the study's runs there "
                        f"(docs/study.md)")
    study = yaml.safe_load(STUDY_RUNS.read_text()) or {}
    runs = study.get("runs") if isinstance(study, dict) else None
    if not isinstance(runs, dict) or not runs or set(study) != {"runs"}:
        raise UserError(f"{STUDY_RUNS} must hold one key, `runs`: a mapping of run names to "
                        f"their params overrides")
    for name, overrides in runs.items():
        where = f"{STUDY_RUNS}, run '{name}'"
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise UserError(f"{where}: a run name is 1-64 letters, digits, '-' or '_', "
                            f"starting with a letter or digit")
        if not isinstance(overrides, dict) or any(
                not isinstance(v, str | int | float | bool | None) for v in overrides.values()):
            raise UserError(f"{where}: give its overrides as `dotted.key: value`, one scalar "
                            f"each (`{{}}` for params.yaml as it is)")
        unknown = [k for k in overrides if k not in flatten(raw_params)]
        if unknown:
            raise UserError(f"{where}: '{unknown[0]}' is not a key of {PARAMS} "
                            f"(dotted, as `dvc exp run -S` takes it)")
        try:
            parse_params(merged(raw_params, nested(overrides)))
        except ParamError as e:
            raise UserError(f"{where}: {e}") from None
    return runs


def dvc(*args: str, quiet: bool = False) -> str:
    """Run a `dvc` command in the project with this interpreter's DVC, its folder first on
    PATH (DVC starts its queue workers as `dvc` from PATH), so the environment need not be
    activated; its output, or UserError with it on failure."""
    out = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=quiet, text=True,
                         env=own_tools_first())
    if out.returncode != 0:
        detail = (out.stderr or out.stdout or "").strip().splitlines() if quiet else []
        raise UserError(f"`dvc {' '.join(args)}` failed"
                        + (f": {detail[-1]}" if detail else " (its output is above)"))
    return out.stdout if quiet else ""


def own_tools_first() -> dict[str, str]:
    """This environment with the interpreter's folder (its `dvc`) first on PATH."""
    return {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                    os.environ.get("PATH", "")])}


def experiments() -> dict[str, Experiment]:
    """The experiments of the current commit by name (`dvc exp show`)."""
    import dvc.api

    return {row["Experiment"]: Experiment(row["Experiment"], row)
            for row in dvc.api.exp_show() if row["Experiment"]}


def same_params(e: Experiment, expected: dict) -> bool:
    """Whether the experiment ran with exactly the `expected` flat params."""
    return all(format_value(e.values.get(k)) == format_value(v) for k, v in expected.items())


def typed(value: object) -> str:
    """`value` as `dvc exp run -S` must get it to write the same YAML value (1.0 stays a float,
    so the run's params, and DVC's run-cache keys, equal those of params.yaml)."""
    if isinstance(value, str) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


def queue_runs(runs: dict[str, dict], raw_params: dict, force: bool) -> list[str]:
    """Queue each run not already done with its params; the names queued."""
    done = experiments()
    queued = []
    for name, overrides in runs.items():
        expected = flatten(merged(raw_params, nested(overrides)))
        old = done.get(name)
        if old and not force and same_params(old, expected) and old.finished:
            print(f"study: {name} is up to date (experiment {old.values['rev']})")
            continue
        if old:
            dvc("exp", "remove", name, quiet=True)
        sets = [a for k, v in overrides.items() for a in ("-S", f"{k}={typed(v)}")]
        dvc("exp", "run", "--queue", "--name", name, *(["--force"] if force else []), *sets,
            "summary", quiet=True)
        print(f"study: {name} queued ({', '.join(sets[1::2]) or 'params.yaml as it is'})")
        queued.append(name)
    return queued


def failure(name: str) -> str:
    """The error line of a failed run's log, or where to look."""
    out = subprocess.run([sys.executable, "-m", "dvc", "queue", "logs", name],
                         capture_output=True, text=True, env=own_tools_first())
    errors = [line for line in out.stdout.splitlines() if line.startswith("error: ")]
    return errors[0].removeprefix("error: ") if errors else f"see `dvc queue logs {name}`"


def predictions(e: Experiment) -> list[tuple[str, str]]:
    """(actual, predicted) per test image of the fine-tuned model of experiment `e`."""
    text = e.read(PREDICTIONS)
    return [(r["actual"], r["predicted"]) for r in csv.DictReader(io.StringIO(text))]


def gather(runs: dict[str, dict], raw_params: dict) -> dict:
    """Each run's results, and McNemar's counts for each pair of runs that share a test set."""
    done = experiments()
    missing = [name for name in runs if name not in done or not done[name].finished]
    if missing:
        raise UserError(f"study: run {missing[0]} has no results: {failure(missing[0])}")
    workspace = {k: v for k, v in flatten(raw_params).items() if not k.startswith("report.")}
    rows, answers = [], {}
    for name, overrides in runs.items():
        e = done[name]
        answers[name] = predictions(e)
        tested = json.loads(e.read(EVALUATION))
        rows.append({
            "name": name, "experiment": e.rev,
            "changed": overrides,
            "fraction": float(e.values["data.fraction"]),
            "minutes": e.metric("minutes"),
            "this_paper": same_params(e, workspace),
            **{model: {key: tested[model][key] for key in ("accuracy", "correct", "count")}
               for model in ("head", "finetuned")}})
    pairs = []
    for a, b in combinations(runs, 2):
        if same_test_set((done[a].values, done[b].values),
                         ([t for t, _ in answers[a]], [t for t, _ in answers[b]])):
            only_first, only_second = discordant([p == t for t, p in answers[a]],
                                                 [p == t for t, p in answers[b]])
            pairs.append({"runs": [a, b], "only_first": len(only_first),
                          "only_second": len(only_second)})
    return {"runs": rows, "pairs": pairs}


def write_results(results: dict) -> bool:
    """Write study/results.json if its content changed; whether it did."""
    text = json.dumps(results, indent=2, sort_keys=True) + "\n"
    if STUDY_RESULTS.is_file() and STUDY_RESULTS.read_text() == text:
        return False
    with atomic_path(STUDY_RESULTS) as tmp:
        tmp.write_text(text)
    return True


def main(argv: list[str] | None = None) -> None:
    """Queue and run the study's runs, gather their results, render the paper."""
    parser = argparse.ArgumentParser(prog="python -m transfer.study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", "-j", type=int, default=1, metavar="N",
                        help="runs at a time (DVC queue workers; default 1)")
    parser.add_argument("--force", action="store_true",
                        help="recompute every run, even those DVC's run cache holds")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"argument --jobs: {args.jobs} is not a number of workers >= 1")
    raw_params = yaml.safe_load(PARAMS.read_text())
    runs = load_study(raw_params)
    if queue_runs(runs, raw_params, args.force):
        dvc("exp", "run", "--run-all", "--jobs", str(args.jobs))
    changed = write_results(gather(runs, raw_params))
    print(f"study: {len(runs)} runs; {STUDY_RESULTS} {'written' if changed else 'unchanged'}")
    dvc("repro")


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
