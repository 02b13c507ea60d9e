"""An earlier recipe against today's defaults on a photo dataset, at several shares of its data.

    python -m bench.photos DATASET [--fractions 0.01 0.1 1] [--baseline old | before-37]
        [--out bench/results/photos-NAME.md]

DATASET is an image folder or archive (`train/<class>/` beside `test/<class>/`). For each share
of the training data, both recipes run the pipeline from `fetch` to `evaluate` in a workspace of
their own under a temporary folder: the baseline is "old", the CIFAR-10-tuned defaults before
`auto` (96 px, head batch 256, fine-tuning batch 128 at 1e-3, flips only, 10% of the share for
validation), or "before-37", the photo recipe before issue 37 (random rotation and zoom 0.1
besides flips); "new" is every default of params.yaml. Choices inside a run are made on its
validation split; the test set gives the table's numbers, each with its Wilson 95% interval.
Writes a Markdown table.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS, folder_params, script_parser, stage, write_params
from transfer.paper.stats import wilson_interval

STAGES = ("fetch", "features", "train", "finetune", "evaluate")
OLD = {"model": {"input_size": 96}, "data": {"val_min": 0}, "train": {"batch_size": 256},
       "finetune": {"batch_size": 128, "learning_rate": 0.001,
                    "augment": {"rotation": 0.0, "zoom": 0.0}}}
BASELINES = {"old": OLD,
             "before-37": {"finetune": {"augment": {"rotation": 0.1, "zoom": 0.1}}}}


def run(work: Path, dataset: Path, fraction: float, recipe: str) -> dict:
    """Run the stages in `work`; what the table shows."""
    work.mkdir(parents=True)
    write_params(work, folder_params(dataset, fraction, BASELINES.get(recipe, {})))
    start = time.perf_counter()
    peaks = {name: stage(work, name)["peak_memory_gb"] for name in STAGES}
    seconds = time.perf_counter() - start
    evaluation, head, tuned, fetched, ran = (
        json.loads((work / path).read_text()) for path in (
            "metrics/evaluate.json", "dvclive/train/metrics.json",
            "dvclive/finetune/metrics.json", "metrics/resolved/fetch.json",
            "metrics/resolved/finetune.json"))
    finetune = ran["params"]["finetune"]
    counts = {split: len(np.load(work / f"data/prepared/{split}_y.npy"))
              for split in ("train", "val")}
    return {"fraction": fraction, "recipe": recipe, "seconds": seconds, **counts,
            "fetch_gb": peaks["fetch"], "peak_gb": max(peaks.values()),
            "input_size": fetched["params"]["model"]["input_size"],
            "batch": finetune["batch_size"], "rate": finetune["learning_rate"],
            "rotation": finetune["augment"]["rotation"],
            "val_head": head["best_val_accuracy"], "val_tuned": tuned["best_val_accuracy"],
            "kept_head": not tuned["improved"],
            **{model: (evaluation[model]["correct"], evaluation[model]["count"])
               for model in ("head", "finetuned")}}


def cell(correct: int, count: int) -> str:
    """Accuracy with its Wilson interval."""
    low, high = wilson_interval(correct, count)
    return f"{100 * correct / count:.1f}% ({100 * low:.1f}–{100 * high:.1f})"


def table(rows: list[dict]) -> str:
    """The Markdown table of every run."""
    lines = ["| data | train / val images | recipe | input, batch, lr, rotation and zoom "
             "| val. head / fine-tuned "
             "| test head (95% CI) | test fine-tuned (95% CI) | wall time | peak memory: fetch, "
             "any stage |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kept = " (head kept)" if r["kept_head"] else ""
        lines.append(
            f"| {r['fraction']:.0%} | {r['train']:,} / {r['val']:,} | {r['recipe']} | "
            f"{r['input_size']} px, {r['batch']}, {r['rate']:g}, {r['rotation']:g}"
            f" | {100 * r['val_head']:.1f}% / "
            f"{100 * r['val_tuned']:.1f}% | {cell(*r['head'])} | {cell(*r['finetuned'])}{kept} | "
            f"{r['seconds']:.0f} s | {r['fetch_gb']:.2f}, {r['peak_gb']:.2f} GB |")
    return "\n".join(lines)


def main() -> None:
    """Run both recipes at each fraction and write the table."""
    parser = script_parser(__doc__)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--baseline", choices=list(BASELINES), default="old")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    dataset = args.dataset.resolve()
    name = dataset.name.split(".")[0]
    suffix = "" if args.baseline == "old" else f"-{args.baseline}"
    out = args.out or RESULTS / f"photos-{name}{suffix}.md"
    rows = []
    with tempfile.TemporaryDirectory(prefix="photos-bench-") as tmp:
        for fraction in args.fractions:
            for recipe in (args.baseline, "new"):
                rows.append(run(Path(tmp) / f"{recipe}-{fraction}", dataset, fraction, recipe))
                print(table(rows).splitlines()[-1], flush=True)
    out.write_text(f"# The {args.baseline} recipe against today's defaults on {name}\n\n"
                   f"`python -m bench.photos {args.dataset} --baseline {args.baseline}` on "
                   f"{os.cpu_count()} cores.\n\n{table(rows)}\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
