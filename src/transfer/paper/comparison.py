"""The study's part of the paper: its table, its figure and McNemar's test for each pair of
runs that share a test set, from study/results.json (written by `python -m transfer.study`)."""

from __future__ import annotations

from pathlib import Path

from transfer.paper import charts
from transfer.paper.experiments import format_value
from transfer.paper.stats import mcnemar_p, wilson_interval
from transfer.paper.wording import Table, percent
from transfer.runtime.files import read_json
from transfer.runtime.paths import STUDY_RESULTS

FIGURE = "study.png"


def label(run: dict) -> str:
    """The run's name, marked when it is the paper's own run."""
    return f"{run['name']} (this paper)" if run["this_paper"] else run["name"]


def study_section() -> dict | None:
    """The table, the pairwise tests and `draw`, which draws the figure into a folder; None
    before the study has run."""
    if not STUDY_RESULTS.is_file():
        return None
    results = read_json(STUDY_RESULTS)
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
    head = [run["head"]["accuracy"] for run in runs]
    tuned = [run["finetuned"]["accuracy"] for run in runs]

    def draw(figures: Path) -> None:
        """The study's figure: accuracy against the share of the data, else wall time."""
        if by_fraction:
            charts.accuracy_vs_fraction([run["fraction"] for run in runs], head, tuned,
                                       [run["this_paper"] for run in runs], figures / FIGURE)
            return
        timed = [i for i, run in enumerate(runs) if run["minutes"] is not None]
        charts.accuracy_against([label(runs[i]) for i in timed],
                               [runs[i]["minutes"] for i in timed], charts.WALL_TIME,
                               [head[i] for i in timed], [tuned[i] for i in timed],
                               figures / FIGURE)
    pairs = [{"first": a, "second": b, "only_first": pair["only_first"],
              "only_second": pair["only_second"],
              "p": mcnemar_p(pair["only_first"], pair["only_second"])}
             for pair in results["pairs"] for a, b in [pair["runs"]]]
    table = Table("The study's runs (`study/runs.yaml`): the params each changed, test accuracy "
                  "of the head on the frozen base and of the fine-tuned model with Wilson's 95% "
                  "interval, and the run's wall time from fetch to evaluate.",
                  ["run", "changed params", "test acc. head", "test acc. fine-tuned",
                   "95% CI", "wall time (min)"], rows, "table-study.png")
    return {"runs": runs, "names": [run["name"] for run in runs], "table": table,
            "by_fraction": by_fraction, "figure": FIGURE, "pairs": pairs, "draw": draw}
