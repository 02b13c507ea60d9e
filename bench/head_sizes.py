"""A head on frozen features at larger input sizes: the only recipe short of fine-tuning.

    python -m bench.head_sizes [--data PATH] [--fraction 0.1] [--sizes 96 160 224]
        [--out bench/results/tuning.md]

One project copy on a stratified `--fraction` of CIFAR-10, EfficientNetLite0 with ImageNet
weights: `dvc repro train` once per input size. Reports each size's features rate, the wall
time of fetch, features and train (`metrics/time`), and the head's best validation accuracy.
The test set is never scored. Writes the section "head-sizes" of `--out`.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import (
    RESULTS,
    SHARED_DATA,
    change_params,
    project,
    run,
    script_parser,
    unpacked,
    write_section,
)
from transfer.params.overrides import nested
from transfer.runtime.devices import device_description
from transfer.runtime.files import read_json


def main() -> None:
    """Run each size, print the table and write it into `--out`."""
    parser = script_parser(__doc__)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 160, 224])
    parser.add_argument("--out", type=Path, default=RESULTS / "tuning.md")
    args = parser.parse_args()
    begin, rows = time.perf_counter(), []
    with tempfile.TemporaryDirectory(prefix="head-sizes-") as work:
        data = unpacked(args.data.resolve(), Path(work))
        repo = project(Path(work), data, {"data": {"fraction": args.fraction}, "model": {
            "backbone": "EfficientNetLite0", "weights": "imagenet", "input_size": args.sizes[0]}})
        for size in args.sizes:
            change_params(repo, nested({"model.input_size": size}))
            run(repo, "dvc", "repro", "train")
            seconds = sum(read_json(repo / f"metrics/time/{s}.json")["seconds"]
                          for s in ("fetch", "features", "train"))
            rows.append((size, read_json(repo / "metrics/features.json")["images_per_second"],
                         seconds, read_json(repo / "dvclive/train/metrics.json")[
                             "best_val_accuracy"]))
            print(*rows[-1], flush=True)
    text = "\n".join([
        f"## A head on frozen features at larger input sizes, {args.fraction:.0%} of CIFAR-10, "
        f"EfficientNetLite0 with ImageNet weights, {device_description()}",
        "",
        f"`python -m bench.head_sizes --fraction {args.fraction}`, "
        f"{time.perf_counter() - begin:.0f} s in all. Validation only.",
        "",
        "| input size | features (images/s) | fetch + features + train (s) | head, best val. |",
        "|---|---|---|---|",
        *(f"| {size} px | {rate:.0f} | {seconds:.0f} | {acc:.1%} |"
          for size, rate, seconds, acc in rows)])
    print(text)
    write_section(args.out, "head-sizes", text)


if __name__ == "__main__":
    main()
