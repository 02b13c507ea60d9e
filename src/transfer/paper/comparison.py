"""The runs the paper compares with its own: the study (study/results.json, written by
`python -m transfer.study`: its table and McNemar's test for each pair of runs that share a
test set) and the other experiments of the commit (`dvc exp show`); their figures are
`transfer.paper.figures`'."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from transfer.paper.charts import WALL_TIME
from transfer.paper.escape import Markdown
from transfer.paper.experiments import Experiment, format_value, run_params, varying_params
from transfer.paper.stats import mcnemar_p, wilson_interval
from transfer.paper.wording import Table, percent


@dataclass(frozen=True)
class Study:
    """The study's runs, their table, whether they differ only in the share of the data, and
    the pairs compared by McNemar's test."""

    runs: tuple[Mapping, ...]
    table: Table
    by_fraction: bool
    pairs: tuple[Mapping, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The runs' names."""
        return tuple(run["name"] for run in self.runs)


@dataclass(frozen=True)
class Axis:
    """What the experiments' figure plots the runs against: each run's label and x, the axis's
    label and the words for it."""

    labels: tuple[str, ...]
    x: tuple[float, ...]
    label: str
    words: str
    head: tuple[float | None, ...]
    tuned: tuple[float | None, ...]


@dataclass(frozen=True)
class Experiments:
    """The other runs of this commit with test results: their table and figure axis."""

    runs: tuple[Experiment, ...]
    table: Table
    axis: Axis

    @property
    def range(self) -> tuple[float, float]:
        """The lowest and highest fine-tuned test accuracy plotted (0, 0 when none)."""
        tested = [a for a in self.axis.tuned if a is not None] or [0.0]
        return min(tested), max(tested)


def label(run: Mapping) -> str:
    """The run's name, marked when it is the paper's own run."""
    return f"{run['name']} (this paper)" if run["this_paper"] else run["name"]


def study(results: Mapping | None) -> Study | None:
    """The study's part of the paper from its results; None before the study has run."""
    if results is None:
        return None
    runs = results["runs"]
    rows = []
    for run in runs:
        tuned = run["finetuned"]
        low, high = wilson_interval(tuned["correct"], tuned["count"])
        changed = ", ".join(f"{k}={format_value(v)}" for k, v in run["changed"].items()) \
            or "none"
        rows.append([label(run), changed, percent(run["head"]["accuracy"]),
                     percent(tuned["accuracy"]), f"{percent(low)} – {percent(high)}",
                     "—" if run["minutes"] is None else f"{run['minutes']:.1f}"])
    by_fraction = all(set(run["changed"]) <= {"data.fraction"} for run in runs) and \
        len({run["fraction"] for run in runs}) > 1
    pairs = tuple({"first": a, "second": b, "only_first": pair["only_first"],
                   "only_second": pair["only_second"],
                   "p": mcnemar_p(pair["only_first"], pair["only_second"])}
                  for pair in results["pairs"] for a, b in [pair["runs"]])
    table = Table(Markdown("The study's runs (`study/runs.yaml`): the params each changed, test "
                           "accuracy of the head on the frozen base and of the fine-tuned model "
                           "with Wilson's 95% interval, and the run's wall time from fetch to "
                           "evaluate."),
                  ["run", "changed params", "test acc. head", "test acc. fine-tuned",
                   "95% CI", "wall time (min)"], rows, "table-study.png")
    return Study(runs=tuple(runs), table=table, by_fraction=by_fraction, pairs=pairs)


def as_number(value: object) -> float | None:
    """A param value as a number, or None if it is not one (`auto`, a path, a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def experiments(runs: tuple[Experiment, ...]) -> Experiments | None:
    """One row per run: its name, the params that differ between the runs, validation and test
    accuracy of both phases, wall time; and the figure's x axis (the one param the runs vary
    when it is a number, else wall time). None for fewer than two runs: nothing to compare."""
    if len(runs) < 2:
        return None
    varying = varying_params(list(runs), run_params())
    rows = [[e.label, ", ".join(f"{k}={e.param(k)}" for k in varying) or "none",
             *(percent(e.metric(key)) for key in ("val_acc_head", "val_acc", "test_acc_head",
                                                  "test_acc")),
             "—" if e.metric("minutes") is None else f"{e.metric('minutes'):.1f}"]
            for e in runs]
    numbers = [as_number(e.values.get(varying[0])) for e in runs] if len(varying) == 1 else []
    if numbers and None not in numbers:
        plotted, x, words, name = runs, numbers, f"the value of {varying[0]}", varying[0]
    else:
        plotted = tuple(e for e in runs if e.metric("minutes") is not None)
        x, words, name = ([e.metric("minutes") for e in plotted],
                          "its wall time from fetch to evaluate", WALL_TIME)
    axis = Axis(labels=tuple(e.label for e in plotted), x=tuple(x), label=name, words=words,
                head=tuple(e.metric("test_acc_head") for e in plotted),
                tuned=tuple(e.metric("test_acc") for e in plotted))
    header = ["run", "params that differ", "val. acc. head", "val. acc. fine-tuned",
              "test acc. head", "test acc. fine-tuned", "wall time (min)"]
    return Experiments(runs=runs, axis=axis, table=Table(
        Markdown("The runs of this commit that have test results (`dvc exp show`): the params "
                 "in which they differ, best validation accuracy and test accuracy of both "
                 "phases, and each run's wall time from fetch to evaluate."),
        header, rows, "table-experiments.png"))
