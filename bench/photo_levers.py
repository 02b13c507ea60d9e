"""Fine-tuning levers for photos, on the validation split of each photo set (issue 37).

    .venv/bin/python -m bench.photo_levers WORK DATASET [DATASET ...] [--fractions 0.1 1]
        [--only default flips ...] [--val-min N]
    .venv/bin/python -m bench.photo_levers WORK --table

For each dataset and share of its training data, `fetch`, `features` and `train` run once in
a workspace of their own under WORK (one per backbone), then `finetune` once per variant in
that workspace, its params changed as the variant says. Only the validation split is read:
`evaluate` never runs. Appends one JSON line per run to WORK/results.jsonl (a finished run is
not repeated) and prints the table.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from bench.common import change_params, folder_params, params_of, script_parser, stage, write_params
from transfer.params.overrides import merged
from transfer.training import recipe

# Each variant: (backbone, finetune params to set); a `lr` factor multiplies the rule's rate,
# `min_steps` sets the epochs to at least 5 and enough for that many steps.
# A backbone named `NAME@SIZE` runs at input size SIZE instead of its own.
VARIANTS: dict[str, tuple[str, dict]] = {
    "default": ("EfficientNetLite0", {}),
    "flips": ("EfficientNetLite0", {"augment": {"rotation": 0.0, "zoom": 0.0}}),
    "lr/2": ("EfficientNetLite0", {"lr": 0.5}),
    "lr/4": ("EfficientNetLite0", {"lr": 0.25}),
    "warmup 0.2": ("EfficientNetLite0", {"warmup": 0.2}),
    "lr/2 warmup 0.2": ("EfficientNetLite0", {"lr": 0.5, "warmup": 0.2}),
    "10 epochs": ("EfficientNetLite0", {"epochs": 10}),
    "flips 10 epochs": ("EfficientNetLite0", {"epochs": 10,
                                              "augment": {"rotation": 0.0, "zoom": 0.0}}),
    "Lite2": ("EfficientNetLite2", {}),
    "Lite2 3 epochs": ("EfficientNetLite2", {"epochs": 3}),
    "Lite1": ("EfficientNetLite1", {}),
    "bottom rate 0.1": ("EfficientNetLite0", {"bottom_rate": 0.1}),
    "bottom rate 0.01": ("EfficientNetLite0", {"bottom_rate": 0.01}),
    "bottom rate 0.1 lr x2": ("EfficientNetLite0", {"bottom_rate": 0.1, "lr": 2.0}),
    "250 steps": ("EfficientNetLite0", {"min_steps": 250}),
    "flips 250 steps": ("EfficientNetLite0", {"min_steps": 250,
                                              "augment": {"rotation": 0.0, "zoom": 0.0}}),
    "Lite0 256 px": ("EfficientNetLite0@256", {}),
    "Lite0 288 px": ("EfficientNetLite0@288", {}),
}


def prepared(work: Path, dataset: Path, fraction: float, backbone: str,
             val_min: int | None) -> dict:
    """The workspace with `fetch`, `features` and `train` done (`data.val_min` set to
    `val_min` if given); their seconds."""
    done = work / "prepared.json"
    if done.exists():
        return json.loads(done.read_text())
    work.mkdir(parents=True, exist_ok=True)
    name, _, size = backbone.partition("@")
    model = {"backbone": name, **({"input_size": int(size)} if size else {})}
    data = {} if val_min is None else {"val_min": val_min}
    write_params(work, folder_params(dataset, fraction, {"model": model, "data": data}))
    seconds = {name: stage(work, name)["seconds"] for name in ("fetch", "features", "train")}
    done.write_text(json.dumps(seconds))
    return seconds


def finetune(work: Path, changes: dict) -> dict:
    """`finetune` in `work` with `changes`; its summary, seconds and validation curve."""
    changes = dict(changes)
    factor, min_steps = changes.pop("lr", None), changes.pop("min_steps", None)
    n_train = len(np.load(work / "data/prepared/train_y.npy"))
    batch = recipe.batch_size(n_train)
    if factor:
        changes["learning_rate"] = factor * recipe.learning_rate(batch)
    if min_steps:
        changes["epochs"] = max(5, math.ceil(min_steps / math.ceil(n_train / batch)))
    change_params(work, {"finetune": merged(params_of()["finetune"], changes)})
    seconds = stage(work, "finetune")["seconds"]
    summary = json.loads((work / "dvclive/finetune/metrics.json").read_text())
    curve = [float(line.split("\t")[-1]) for line in (
        work / "dvclive/finetune/plots/metrics/eval/accuracy.tsv").read_text().splitlines()[1:]]
    head = json.loads((work / "dvclive/train/metrics.json").read_text())
    return {**summary, "seconds": seconds, "curve": curve,
            "head_val": head["best_val_accuracy"]}


def table_row(r: dict, work: Path) -> str:
    """One run's row: validation accuracy of the head and of the best fine-tuning epoch (the
    head kept when that is not above it), the curve, the stage's seconds."""
    folder = work / f"{r['dataset']}-{r['fraction']:g}-{VARIANTS[r['variant']][0]}"
    val = r.get("val") or len(np.load(folder / "data/prepared/val_y.npy"))
    epoch = r["best_epoch"] - r["step"] - 1 + len(r["curve"])  # DVCLive's last step, from 0
    cells = [r["dataset"], f"{r['fraction']:.0%}", r["variant"], val, f"{100 * r['head_val']:.1f}%",
             f"{100 * r['best_val_accuracy']:.1f}% ({epoch}"
             f"{'' if r['improved'] else ', head kept'})",
             ", ".join(f"{100 * a:.1f}" for a in r["curve"]), f"{r['seconds']:.0f} s"]
    return "| " + " | ".join(map(str, cells)) + " |"


def table(rows: list[dict], work: Path) -> str:
    """The Markdown table of the runs in `work`."""
    header = ["data", "share", "variant", "val. images", "head", "fine-tuned (best epoch)",
              "by epoch", "`finetune`"]
    return "\n".join(["| " + " | ".join(header) + " |", "|---" * len(header) + "|",
                      *(table_row(r, work) for r in rows)])


def main() -> None:
    """Run every variant on every dataset and share; print and keep the results."""
    parser = script_parser(__doc__)
    parser.add_argument("work", type=Path)
    parser.add_argument("datasets", type=Path, nargs="*")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--val-min", type=int, help="data.val_min for WORK's workspaces: a larger "
                        "validation split, drawn first from the images outside the share")
    parser.add_argument("--table", action="store_true", help="print the table of WORK's runs")
    args = parser.parse_args()
    results = args.work / "results.jsonl"
    if args.table:
        print(table([json.loads(line) for line in results.read_text().splitlines()], args.work))
        return
    if not args.datasets:
        parser.error("give at least one DATASET, or --table")
    args.work.mkdir(parents=True, exist_ok=True)
    lines = results.read_text().splitlines() if results.exists() else []
    done = {(r["dataset"], r["fraction"], r["variant"]) for r in map(json.loads, lines)}
    for fraction in args.fractions:
        for dataset in args.datasets:
            for variant in args.only:
                backbone, changes = VARIANTS[variant]
                work = args.work / f"{dataset.name}-{fraction:g}-{backbone}"
                key = (dataset.name, fraction, variant)
                if key in done:
                    continue
                start = time.perf_counter()
                before = prepared(work, dataset, fraction, backbone, args.val_min)
                row = {"dataset": dataset.name, "fraction": fraction, "variant": variant,
                       "prepare_seconds": before, "val": len(np.load(
                           work / "data/prepared/val_y.npy")), **finetune(work, changes)}
                row["wall"] = time.perf_counter() - start
                with results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{dataset.name} {fraction:g} {variant}: head {row['head_val']:.4f}, "
                      f"best {row['best_val_accuracy']:.4f}, curve "
                      f"{' '.join(f'{a:.3f}' for a in row['curve'])}, finetune "
                      f"{row['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
