"""Accuracy levers on the validation split: each variant of the fine-tuning recipe, one run.

    python -m bench.accuracy_levers [--data PATH] [--fraction 0.3] [--defaults]
        [--only WORD ...] [--out bench/results/tuning.md]

One project copy on a stratified `--fraction` of CIFAR-10 (its own validation split, 10% of
it), EfficientNetLite0 with ImageNet weights at 96 px: `fetch`, `features` and `train` run once,
then `finetune` once per variant of VARIANTS (`dvc repro finetune` after a params change). Each
fine-tuned model is also scored on validation with flip test-time augmentation and at larger
test-time input sizes (the same weights, a larger Resizing). The test set is never read.
`--defaults` runs the project's defaults alone on the dataset as it is (any image folder, the
input size `auto`), to check the test-time levers on photos. A variant that changes the model
(input size, backbone) also reruns `features` and `train`: its `dvc repro` seconds include
them, the `finetune` stage's own seconds (its stage record) do not. Writes the section
"accuracy-levers" (with `--defaults`: "accuracy-levers-<dataset>"; with `--only`:
"accuracy-levers-<words>") of `--out`.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common
from bench.common import script_parser
from transfer.params.overrides import merged
from transfer.runtime.devices import device_description

TEST_SIZES = (112, 128)
VARIANTS = [  # (name, finetune params over the baseline[, model params over 96 px])
    ("baseline: 2 epochs at 96 px", {"epochs": 2}),
    ("label smoothing 0.1", {"epochs": 2, "label_smoothing": 0.1}),
    ("progressive 64 -> 96 px, 2 epochs", {"epochs": 2, "start_size": 64}),
    ("progressive 64 -> 96 px, 3 epochs", {"epochs": 3, "start_size": 64}),
    ("3 epochs at 96 px", {"epochs": 3}),
    ("2 epochs at 128 px", {"epochs": 2}, {"input_size": 128}),
    ("3 epochs at 128 px", {"epochs": 3}, {"input_size": 128}),
    ("3 epochs at 128 px, blocks 4-7 trained, blocks 1-3 cached (`finetune.layers: 107`)",
     {"epochs": 3, "layers": 107}, {"input_size": 128}),
    ("3 epochs at 128 px, blocks 5-7 trained, blocks 1-4 cached (`finetune.layers: 78`)",
     {"epochs": 3, "layers": 78}, {"input_size": 128}),
    ("5 epochs at 128 px, blocks 1-4 cached", {"epochs": 5, "layers": 78}, {"input_size": 128}),
    ("3 epochs at 160 px, blocks 1-4 cached", {"epochs": 3, "layers": 78}, {"input_size": 160}),
    ("7 epochs at 128 px, blocks 1-5 cached (`finetune.layers: 50`)", {"epochs": 7, "layers": 50},
     {"input_size": 128}),
    ("4 epochs at 128 px, Lite1, blocks 1-4 cached", {"epochs": 4, "layers": "auto"},
     {"input_size": 128, "backbone": "EfficientNetLite1"}),
    ("4 epochs at 128 px, Lite2, blocks 1-4 cached", {"epochs": 4, "layers": "auto"},
     {"input_size": 128, "backbone": "EfficientNetLite2"}),
    ("5 epochs at 128 px, blocks 1-4 cached, batch 128 at 1e-3 (the defaults)",
     {"epochs": 5, "layers": 78, "batch_size": 128, "learning_rate": 1e-3}, {"input_size": 128}),
    ("5 epochs at 128 px, blocks 1-4 cached, batch 256 at 2e-3",
     {"epochs": 5, "layers": 78, "batch_size": 256, "learning_rate": 2e-3}, {"input_size": 128}),
    ("5 epochs at 128 px, blocks 1-4 cached, batch 64 at 5e-4",
     {"epochs": 5, "layers": 78, "batch_size": 64, "learning_rate": 5e-4}, {"input_size": 128}),
    # issue 40: K cached views of each image, translated by up to 4 px of 32 (0.125), every
    # other one mirrored, against the image and its mirror (views 2, translation 0) above
    *((f"5 epochs at 128 px, blocks 1-4 cached, {k} views translated by up to 0.125",
       {"epochs": 5, "layers": 78, "augment": {"translation": 0.125, "views": k}},
       {"input_size": 128}) for k in (2, 4, 8)),
    *((f"8 epochs at 128 px, blocks 1-4 cached, {k} views translated by up to {t}",
       {"epochs": 8, "layers": 78, "augment": {"translation": t, "views": k}},
       {"input_size": 128}) for k, t in ((2, 0.0), (8, 0.125))),
    ("3 epochs at 128 px, whole base, flips and random translation up to 0.125",
     {"epochs": 3, "layers": "all", "augment": {"translation": 0.125}}, {"input_size": 128}),
]


def val_scores(repo: Path) -> dict[str, float]:
    """Validation accuracy of the fine-tuned model as saved, with flip TTA, and at TEST_SIZES."""
    import keras

    from transfer.training import progressive_resizing

    x = np.load(repo / "data/prepared/val_x.npy").astype("float32")
    y = np.load(repo / "data/prepared/val_y.npy")
    model = keras.models.load_model(repo / "models/finetuned.keras", compile=False)
    wide = progressive_resizing.any_size(model)

    def accuracy(probs: np.ndarray) -> float:
        """Share of argmax hits."""
        return float((probs.argmax(1) == y).mean())

    plain = common.probabilities(model, x)
    flipped = common.probabilities(model, x, lambda batch: batch[:, :, ::-1])
    scores = {"val": accuracy(plain), "val, flip TTA": accuracy(plain + flipped)}
    for size in TEST_SIZES:
        scores[f"val at {size} px"] = accuracy(common.probabilities(
            wide, x, lambda batch, size=size: np.asarray(keras.ops.image.resize(batch,
                                                                                (size, size)))))
    return scores


def main() -> None:
    """Run the variants, print the table and write it into `--out`."""
    parser = script_parser(__doc__)
    parser.add_argument("--data", type=Path, default=common.SHARED_DATA)
    parser.add_argument("--fraction", type=float, default=0.3)
    parser.add_argument("--defaults", action="store_true",
                        help="the defaults alone, input size auto (photos)")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "tuning.md")
    parser.add_argument("--only", nargs="*", default=[], metavar="WORD",
                        help="run only the variants whose name contains one of these words")
    args = parser.parse_args()
    variants = [("the defaults", {})] if args.defaults else [
        v for v in VARIANTS if not args.only or any(word in v[0] for word in args.only)]
    dataset = re.sub(r"(\.tar\.gz|\.zip)$", "", args.data.name)
    begin = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="levers-") as work:
        data = common.unpacked(args.data.resolve(), Path(work))
        model = {"backbone": "EfficientNetLite0", "weights": "imagenet",
                 "input_size": "auto" if args.defaults else 96}
        repo = common.project(Path(work), data,
                              {"data": {"fraction": args.fraction}, "model": model})
        common.run(repo, "dvc", "repro", "train")
        n_train = len(np.load(repo / "data/prepared/train_y.npy"))
        baseline = {"label_smoothing": 0.0, "start_size": None, "layers": "all"}
        for name, change, *model_change in variants:
            common.change_params(repo, {"finetune": merged(baseline, change),
                                        "model": merged(model, next(iter(model_change), {}))})
            _, seconds = common.run(repo, "dvc", "repro", "finetune")
            stage = json.loads((repo / "metrics/time/finetune.json").read_text())["seconds"]
            scores = val_scores(repo)
            rows.append((name, seconds, stage, scores))
            print(name, f"{seconds:.0f} s", f"{stage:.0f} s", scores, flush=True)
    columns = list(rows[0][3])
    text = "\n".join([
        f"## Accuracy levers: fine-tuning variants on {args.fraction:.0%} of {dataset}, "
        f"EfficientNetLite0 with ImageNet weights at {model['input_size']} px unless the "
        f"variant says otherwise, "
        f"{device_description()}",
        "",
        f"`python -m bench.accuracy_levers --data {args.data.name} --fraction {args.fraction}"
        f"{' --defaults' if args.defaults else ''}"
        f"{' --only ' + ' '.join(map(repr, args.only)) if args.only else ''}`, "
        f"{time.perf_counter() - begin:.0f} s in all. One run each, validation split only "
        f"(the test set is not read). `dvc repro` seconds include `features` and `train` "
        f"where the variant changes the model; the `finetune` stage's own seconds include its "
        f"start-up, its activation cache and its validation passes. {n_train} training images.",
        "",
        f"| variant | `dvc repro` (s) | finetune stage (s) | {' | '.join(columns)} |",
        f"|---|---|---|{'---|' * len(columns)}",
        *(f"| {name} | {seconds:.0f} | {stage:.0f} | "
          f"{' | '.join(f'{s[c]:.2%}' for c in columns)} |" for name, seconds, stage, s in rows)])
    print(text)
    section = ("accuracy-levers" + (f"-{dataset}" if args.defaults else "")
               + "".join(f"-{re.sub(r'[^a-z0-9]+', '-', w.lower())}" for w in args.only))
    common.write_section(args.out, section, text)


if __name__ == "__main__":
    main()
