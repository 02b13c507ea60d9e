"""End to end: `dvc repro` of all five stages in a fresh git repository, then a `train` change."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import copy_project, tiny_params, write_params

STAGES = ("fetch", "features", "train", "finetune", "evaluate")


def run(repo: Path, *args: str) -> str:
    """Run a command in `repo` with this interpreter's tools first on PATH; return its output."""
    bin_dir = str(Path(sys.executable).parent)
    identity = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                for what, value in (("NAME", "test"), ("EMAIL", "test@example.invalid"))}
    env = {**os.environ, **identity, "PYTHONPATH": str(repo / "src"),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def ran(output: str) -> set[str]:
    """The stages that `dvc repro` says it ran."""
    return {stage for stage in STAGES if f"Running stage '{stage}'" in output}


@pytest.mark.slow
def test_dvc_repro_end_to_end(tmp_path, tiny_folder):
    """All stages run, outputs are complete, `dvc status` is clean, and a train-only change
    reruns train, finetune and evaluate but not fetch or features."""
    repo = tmp_path / "repo"
    repo.mkdir()
    copy_project(repo)
    write_params(repo, **tiny_params(tiny_folder))
    run(repo, "git", "init", "-q")
    run(repo, "dvc", "init", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "tiny project")

    assert ran(run(repo, "dvc", "repro")) == set(STAGES)
    assert "up to date" in run(repo, "dvc", "status")

    prepared = {s: np.load(repo / f"data/prepared/{s}_y.npy") for s in ("train", "val", "test")}
    assert {s: len(y) for s, y in prepared.items()} == {"train": 18, "val": 6, "test": 9}
    for split, labels in prepared.items():
        assert np.array_equal(np.load(repo / f"features/{split}_y.npy"), labels)
        assert np.load(repo / f"features/{split}_x.npy").dtype == np.float16
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    for model in ("head", "finetuned"):
        assert metrics[model]["count"] == 9
        assert set(metrics[model]["per_class_accuracy"]) == {"cat", "dog", "fox"}
        assert 0 <= metrics[model]["accuracy"] <= 1 and "top_3_accuracy" in metrics[model]
    with (repo / "eval/predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9 and {r["actual"] for r in rows} == {"cat", "dog", "fox"}
    for path in ("models/model.keras", "models/cifar10.h5", "dvclive/train/metrics.json",
                 "dvclive/finetune/metrics.json", "metrics/features.json"):
        assert (repo / path).is_file(), path
    head_epochs = json.loads((repo / "dvclive/train/metrics.json").read_text())["epochs"]
    steps = (repo / "dvclive/finetune/plots/metrics/eval/accuracy.tsv").read_text().split()[2::2]
    assert steps[0] == str(head_epochs), "fine-tuning epochs must continue the head's"
    plots = json.loads(run(repo, "dvc", "plots", "show", "--json"))
    assert "Confusion matrix (test set)" in json.dumps(plots)

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["learning_rate"] = 0.01
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert ran(run(repo, "dvc", "repro")) == {"train", "finetune", "evaluate"}
    assert "up to date" in run(repo, "dvc", "status")
