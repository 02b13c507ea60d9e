"""The study file's checks, and the paper's study section drawn from a results file (the
end-to-end run through DVC's queue is in test_pipeline.py)."""

from __future__ import annotations

import pytest
import yaml
from conftest import ROOT

from transfer.paper import figures
from transfer.paper.comparison import study
from transfer.paper.run import frozen
from transfer.paper.stats import mcnemar_p, wilson_interval
from transfer.params.overrides import merged, nested
from transfer.runtime.errors import UserError
from transfer.study import load_study, typed


@pytest.fixture
def raw_params() -> dict:
    """The project's params.yaml as written."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_the_shipped_study_is_the_data_fraction_series(workdir, raw_params):
    """study/runs.yaml as shipped: 1%, 10% and 100% of the training data."""
    (workdir / "study").mkdir()
    (workdir / "study/runs.yaml").write_text((ROOT / "study/runs.yaml").read_text())
    assert load_study(raw_params) == {"data-1": {"data.fraction": 0.01},
                                      "data-10": {"data.fraction": 0.1},
                                      "data-100": {"data.fraction": 1.0}}


def test_overrides_merge_into_the_params():
    """Dotted keys become nested ones and replace only their own value."""
    assert merged({"a": {"b": 1, "c": 2}, "d": 3}, nested({"a.b": 5})) == \
        {"a": {"b": 5, "c": 2}, "d": 3}


@pytest.mark.parametrize("value", [1.0, 0.01, 64, True, None, "auto", "null", "1e-3", "a b"])
def test_overrides_reach_dvc_as_the_same_yaml_value(value):
    """`-S key=<typed(value)>` makes DVC write `value` itself: 1.0 stays a float (as 1 it
    would change DVC's run-cache key), a string that looks like null stays a string."""
    parsed = yaml.safe_load(typed(value))
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("text, message", [
    (None, r"study/runs.yaml not found"),
    ("runs: [a, b]\n", r"must hold one key, `runs`"),
    ("runs: {}\nextra: 1\n", r"must hold one key, `runs`"),
    ("runs:\n  bad name: {}\n", r"run 'bad name': a run name is 1-64 letters"),
    ("runs:\n  a: {data.fraction: [1]}\n", r"run 'a': give its overrides as `dotted.key: value`"),
    ("runs:\n  a: {data.fractoin: 0.1}\n", r"run 'a': 'data.fractoin' is not a key of params"),
    ("runs:\n  a: {data.fraction: 2}\n", r"run 'a': data.fraction=2.0 is not allowed: a number"),
    ("runs:\n  a: {train.epochs: '3'}\n", r"run 'a': train.epochs='3' has the wrong type"),
])
def test_a_bad_study_file_is_one_line_naming_the_run(workdir, raw_params, text, message):
    """Each problem of study/runs.yaml is one error naming the file, the run and the key."""
    if text is not None:
        (workdir / "study").mkdir()
        (workdir / "study/runs.yaml").write_text(text)
    with pytest.raises(UserError, match=message) as error:
        load_study(raw_params)
    assert "\n" not in str(error.value)


def results(changed: list[dict], fractions: list[float]) -> dict:
    """A study/results.json of two runs on one test set of 100 images."""
    runs = [{"name": f"run-{i}", "experiment": f"abc{i}", "changed": c, "fraction": f,
             "minutes": 1.0 * (i + 1), "this_paper": i == 1,
             "head": {"accuracy": 0.5 + i / 10, "correct": 50 + 10 * i, "count": 100},
             "finetuned": {"accuracy": 0.7 + i / 10, "correct": 70 + 10 * i, "count": 100}}
            for i, (c, f) in enumerate(zip(changed, fractions))]
    return {"runs": runs, "pairs": [{"runs": ["run-0", "run-1"], "only_first": 2,
                                     "only_second": 12}]}


def test_study_section_from_the_results(workdir):
    """The table has each run's changes, accuracies, Wilson interval and minutes, this paper's
    run marked; the pair gets McNemar's p; the values draw nothing, the figure module does."""
    section = study(frozen(results([{"data.fraction": 0.1}, {"data.fraction": 1.0}], [0.1, 1.0])))
    assert not any(workdir.iterdir())  # gathering values draws nothing
    figures.study(section, workdir)
    low, high = wilson_interval(80, 100)
    assert section.table.rows[1] == ("run-1 (this paper)", "data.fraction=1", "60.0%",
                                     "80.0%", f"{100 * low:.1f}% – {100 * high:.1f}%", "2.0")
    assert section.by_fraction and section.names == ("run-0", "run-1")
    assert section.pairs[0]["p"] == mcnemar_p(2, 12)
    assert (workdir / figures.STUDY).stat().st_size > 0


def test_study_of_other_params_is_plotted_against_time(workdir):
    """A study that changes anything but the share of the data is plotted against wall time."""
    section = study(frozen(results([{"model.input_size": 64}, {}], [1.0, 1.0])))
    figures.study(section, workdir)
    assert not section.by_fraction
    assert section.table.rows[1][1] == "none"
    assert (workdir / figures.STUDY).is_file()


def test_no_study_no_section():
    """Before the study has run, the paper has no study section."""
    assert study(None) is None
