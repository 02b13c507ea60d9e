"""The diff of two runs from made-up records: params, numbers, McNemar, images, sentences (the
end-to-end diff of two queued experiments is in test_pipeline.py)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT

from transfer import diff
from transfer.paper.stats import mcnemar_p
from transfer.paper.wording import p_value
from transfer.runtime.errors import UserError

CLASSES = ["cat", "dog"]
ACTUAL = ["cat", "cat", "dog", "dog", "cat", "dog"]


@dataclass(frozen=True)
class FakeRun(diff.Run):
    """A run whose files are held in memory."""

    files: dict = field(default_factory=dict, hash=False, compare=False)

    def read(self, path: Path | str, mode: str = "r") -> str | bytes:
        """The file from `files`, as a real run would give it."""
        if str(path) not in self.files:
            raise UserError(f"{self.name} has no {path}")
        return self.files[str(path)]


def fake_run(name: str, predicted: list[str], changes: dict, paper: str,
             resolved: dict | None = None) -> FakeRun:
    """A run of the project's params with `changes`, predicting `predicted` on ACTUAL; with
    `resolved` ({stage: its sections}), the records of what its stages resolved."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in changes.items():
        section, leaf = key.split(".")
        params[section][leaf] = value
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["index", "actual", "predicted", "confidence", "head_predicted",
                     "head_confidence"])
    writer.writerows([i, a, p, "0.9", a, "0.9"] for i, (a, p) in enumerate(zip(ACTUAL, predicted)))
    right = [a == p for a, p in zip(ACTUAL, predicted)]
    per_class = {c: float(np.mean([r for r, a in zip(right, ACTUAL) if a == c]))
                 for c in CLASSES}
    images = io.BytesIO()
    np.save(images, np.arange(len(ACTUAL) * 8 * 8 * 3, dtype=np.uint8).reshape(-1, 8, 8, 3))
    return FakeRun(name, f"rev-{name}", {
        "params.yaml": yaml.safe_dump(params),
        "eval/predictions.csv": rows.getvalue(),
        "metrics/summary.json": json.dumps({"test_acc": float(np.mean(right)),
                                            "test_acc_head": 0.5, "val_acc": 0.6,
                                            "val_acc_head": 0.5, "minutes": 2.0}),
        "metrics/evaluate.json": json.dumps({"finetuned": {"per_class_accuracy": per_class}}),
        "data/prepared/classes.json": json.dumps(CLASSES),
        "data/prepared/test_x.npy": images.getvalue(),
        "report/paper.md": paper,
        **{f"metrics/resolved/{stage}.json": json.dumps({"params": sections, "how": {}})
           for stage, sections in (resolved or {}).items()}})


PAPER = "# Title\n\nThe head reached 50.0%. Fine-tuning reached {acc}.\n\n| a | b |\n|---|---|\n"


def test_diff_page_has_every_part(tmp_path):
    """Changed params, each headline number with its change, McNemar's line with the counts
    of fixed and broken images, a picture of each, per-class changes and the sentences of the
    paper that changed."""
    a = fake_run("slow", ["cat", "dog", "dog", "cat", "cat", "dog"], {},
                 PAPER.format(acc="66.7%"))
    b = fake_run("fast", ["cat", "cat", "dog", "dog", "dog", "dog"],
                 {"finetune.epochs": 8}, PAPER.format(acc="83.3%"))
    text = diff.markdown(a, b, 12, tmp_path)
    assert "| `finetune.epochs` | `5` | `8` |" in text
    assert "| test accuracy, fine-tuned | 66.67% | 83.33% | +16.7 points |" in text
    assert "| wall time, fetch to evaluate (min) | 2.0 | 2.0 | 1.00x |" in text
    assert (f"fast gets 2 right that slow got wrong (fixed) and 1 wrong that slow got right "
            f"(broken). McNemar's exact test: {p_value(mcnemar_p(1, 2))}.") in text
    assert "![Fixed: 2 test images fast gets right and slow wrong" in text
    assert "![Broken: 1 test image fast gets wrong and slow right" in text
    assert (tmp_path / "fixed.png").stat().st_size > 0 and (tmp_path / "broken.png").is_file()
    assert "| cat | 66.7% | 66.7% | +0.0 |" in text and "| dog | 66.7% | 100.0% | +33.3 |" in text
    assert "- **slow:** Fine-tuning reached 66.7%." in text
    assert "- **fast:** Fine-tuning reached 83.3%." in text
    assert "The head reached" not in text.split("## The paper")[1]


def test_the_params_show_what_auto_became(tmp_path):
    """Both runs ask for `auto`; their records say what it became: the row shows both, and an
    `auto` both resolved alike is no row."""
    ran = {"fetch": {"model": {"input_size": 128}}}
    a = fake_run("a", ACTUAL, {}, PAPER.format(acc="x"),
                 {**ran, "finetune": {"finetune": {"batch_size": 128, "layers": 78}}})
    b = fake_run("b", ACTUAL, {}, PAPER.format(acc="x"),
                 {**ran, "finetune": {"finetune": {"batch_size": 64, "layers": 78}}})
    table = diff.markdown(a, b, 12, tmp_path).split("## Params")[1].split("## Headline")[0]
    assert "| `finetune.batch_size` | `auto → 128` | `auto → 64` |" in table
    assert "input_size" not in table and "finetune.layers" not in table


def test_runs_on_different_test_sets_are_not_paired(tmp_path):
    """Another data.path means other test images: no McNemar line and no pictures."""
    a = fake_run("a", ACTUAL, {}, PAPER.format(acc="x"))
    b = fake_run("b", ACTUAL, {"data.path": "elsewhere"}, PAPER.format(acc="x"))
    text = diff.markdown(a, b, 12, tmp_path)
    assert "different test sets" in text and "McNemar" not in text
    assert list(tmp_path.iterdir()) == []
    assert "The two papers say the same." in text


def test_sentences_are_prose_sentences_and_table_rows():
    """Headings, images and table rules are not compared; a line holds several sentences."""
    assert diff.sentences("# T\n\nOne. Two (2).\n![x](y.png)\n| a |\n|---|\n") == \
        ["One.", "Two (2).", "| a |"]


def test_unknown_run_is_one_line(workdir):
    """A name that is no experiment or revision is a UserError naming it."""
    with pytest.raises(UserError, match="'nope' is neither `workspace`"):
        diff.resolve("nope")
