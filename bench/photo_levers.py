"""Fine-tuning levers for photos, on the validation split of each photo set (issue 37).

    .venv/bin/python bench/photo_levers.py WORK DATASET [DATASET ...] [--fractions 0.1 1]
        [--only default flips ...]

For each dataset and share of its training data, `fetch`, `features` and `train` run once in
a workspace of their own under WORK (one per backbone), then `finetune` once per variant in
that workspace, its params changed as the variant says. Only the validation split is read:
`evaluate` never runs. Appends one JSON line per run to WORK/results.jsonl (a finished run is
not repeated) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from transfer.training import recipe

ROOT = Path(__file__).resolve().parents[1]
# Each variant: (backbone, finetune params to set); a `lr` factor multiplies the rule's rate.
VARIANTS: dict[str, tuple[str, dict]] = {
    "default": ("EfficientNetLite0", {}),
    "flips": ("EfficientNetLite0", {"augment": {"rotation": 0.0, "zoom": 0.0}}),
    "lr/2": ("EfficientNetLite0", {"lr": 0.5}),
    "lr/4": ("EfficientNetLite0", {"lr": 0.25}),
    "warmup 0.2": ("EfficientNetLite0", {"warmup": 0.2}),
    "lr/2 warmup 0.2": ("EfficientNetLite0", {"lr": 0.5, "warmup": 0.2}),
    "10 epochs": ("EfficientNetLite0", {"epochs": 10}),
    "Lite2": ("EfficientNetLite2", {}),
    "Lite2 3 epochs": ("EfficientNetLite2", {"epochs": 3}),
    "Lite1": ("EfficientNetLite1", {}),
}


def stage(work: Path, name: str) -> dict:
    """Run one stage in `work`; its time record."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TRANSFER_QUIET": "1"}
    out = subprocess.run([sys.executable, "-m", f"transfer.{name}"], cwd=work, env=env,
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{work}: {name} failed:\n{out.stderr[-3000:]}")
    return json.loads((work / "metrics/time" / f"{name}.json").read_text())


def prepared(work: Path, dataset: Path, fraction: float, backbone: str) -> dict:
    """The workspace with `fetch`, `features` and `train` done; their seconds."""
    done = work / "prepared.json"
    if done.exists():
        return json.loads(done.read_text())
    work.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="folder", path=str(dataset), fraction=fraction)
    params["model"]["backbone"] = backbone
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    seconds = {name: stage(work, name)["seconds"] for name in ("fetch", "features", "train")}
    done.write_text(json.dumps(seconds))
    return seconds


def finetune(work: Path, changes: dict) -> dict:
    """`finetune` in `work` with `changes`; its summary, seconds and validation curve."""
    params = yaml.safe_load((work / "params.yaml").read_text())
    base = yaml.safe_load((ROOT / "params.yaml").read_text())["finetune"]
    changes = dict(changes)
    factor = changes.pop("lr", None)
    params["finetune"] = {**base, **changes,
                          "augment": {**base["augment"], **changes.get("augment", {})}}
    if factor:
        n_train = len(np.load(work / "data/prepared/train_y.npy"))
        params["finetune"]["learning_rate"] = factor * recipe.learning_rate(
            recipe.batch_size(n_train))
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    seconds = stage(work, "finetune")["seconds"]
    summary = json.loads((work / "dvclive/finetune/metrics.json").read_text())
    curve = [float(line.split("\t")[-1]) for line in (
        work / "dvclive/finetune/plots/metrics/eval/accuracy.tsv").read_text().splitlines()[1:]]
    head = json.loads((work / "dvclive/train/metrics.json").read_text())
    return {**summary, "seconds": seconds, "curve": curve,
            "head_val": head["best_val_accuracy"]}


def main() -> None:
    """Run every variant on every dataset and share; print and keep the results."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work", type=Path)
    parser.add_argument("datasets", type=Path, nargs="+")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    results = args.work / "results.jsonl"
    args.work.mkdir(parents=True, exist_ok=True)
    done = {(r["dataset"], r["fraction"], r["variant"])
            for r in map(json.loads, results.read_text().splitlines())} if results.exists() else set()
    for fraction in args.fractions:
        for dataset in args.datasets:
            for variant in args.only:
                backbone, changes = VARIANTS[variant]
                work = args.work / f"{dataset.name}-{fraction:g}-{backbone}"
                key = (dataset.name, fraction, variant)
                if key in done:
                    continue
                start = time.perf_counter()
                before = prepared(work, dataset, fraction, backbone)
                row = {"dataset": dataset.name, "fraction": fraction, "variant": variant,
                       "prepare_seconds": before,
                       **finetune(work, changes)}
                row["wall"] = time.perf_counter() - start
                with results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{dataset.name} {fraction:g} {variant}: head {row['head_val']:.4f}, "
                      f"best {row['best_val_accuracy']:.4f}, curve "
                      f"{' '.join(f'{a:.3f}' for a in row['curve'])}, finetune "
                      f"{row['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
