"""Training speed of the fine-tuning step under each speed lever, all measured in one run.

    python -m bench.speed_levers [--steps 12] [--rounds 2] [--only WORD ...]
        [--out bench/results/tuning.md]

The step is the `finetune` stage's with `finetune.layers: all`: random flips, the whole
EfficientNet-Lite base (BatchNormalization frozen) and the head, AdamW, on 32 px images upscaled
inside the model. Random weights (`model.weights=none`) cost the same as ImageNet weights. Each
lever runs in a fresh interpreter (thread settings only apply at start-up): a few warm-up
steps, then `--steps` timed steps; the rounds alternate the levers and the best round counts.
A cached lever trains only the layers above the base's smallest activation at its stride, on
that activation (the activation cache's step; the one pass of the bottom is not in it).
Writes the section "speed-levers" of `--out` (with `--only`: the baseline and the levers
whose name contains one of the words, section "speed-levers-<words>").
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bench.common import RESULTS, ROOT, script_parser, write_section

WARMUP = 3
BASELINE = {"backbone": "EfficientNetLite0", "size": 96, "batch": 128,
            "precision": "float32", "jit": False, "batchnorm": True, "threads": 0,
            "any_size": False, "cached_stride": 0}
LEVERS = [  # (name, what changes from BASELINE)
    ("baseline: Lite0, 96 px, batch 128, float32", {}),
    ("`mixed_bfloat16` (Keras policy)", {"precision": "mixed_bfloat16"}),
    ("XLA (`jit_compile`)", {"jit": True}),
    ("no BatchNormalization: the ceiling of folding it into the convolutions",
     {"batchnorm": False}),
    ("1 intra-op thread, 2 inter-op", {"threads": 1}),
    ("batch 256", {"batch": 256}),
    ("progressive resizing's path at 96 px: an any-size model, each batch resized in Python "
     "(`finetune.start_size`)", {"any_size": True}),
    ("the same at 64 px", {"any_size": True, "size": 64}),
    ("64 px", {"size": 64}),
    ("128 px", {"size": 128}),
    ("96 px, blocks 1-4 frozen and cached (`finetune.layers: auto`, stride 16)",
     {"cached_stride": 16}),
    ("128 px, blocks 1-3 frozen and cached (stride 8)", {"size": 128, "cached_stride": 8}),
    ("128 px, blocks 1-4 frozen and cached (stride 16)", {"size": 128, "cached_stride": 16}),
    ("Lite1 at 96 px", {"backbone": "EfficientNetLite1"}),
    ("Lite2 at 96 px", {"backbone": "EfficientNetLite2"}),
]


def measure(setting: dict, steps: int) -> float:
    """Training images/s of one setting, in this process."""
    import keras
    import numpy as np

    from transfer.models.backbones import build_extractor
    from transfer.models.heads import build_head
    from transfer.models.precision import in_precision
    from transfer.models.unfreezing import unfreeze_top
    from transfer.params.training import TrainParams
    from transfer.training import progressive_resizing
    from transfer.training.activation_cache import layers_above_stride, split_below

    s = setting
    extractor = build_extractor(s["backbone"], "none", s["size"], 32)
    top_layers = unfreeze_top(extractor, layers_above_stride(extractor, s["cached_stride"])
                              if s["cached_stride"] else "all")
    if not s["batchnorm"]:
        class Skip(keras.layers.Layer):
            """Nothing in place of a BatchNormalization layer (whose calls pass a mask)."""

            def call(self, inputs, mask=None):  # noqa: ANN001, ANN201, ARG002 (Keras's call)
                """The inputs as they are."""
                return inputs

        extractor = keras.models.clone_model(extractor, clone_function=lambda layer: (
            Skip() if isinstance(layer, keras.layers.BatchNormalization) else layer))
    if s["any_size"]:
        extractor = progressive_resizing.any_size(extractor)
    head = build_head(extractor.output.shape[-1], 10, TrainParams())
    rng = np.random.default_rng(0)
    if s["cached_stride"]:
        _, top = split_below(extractor, top_layers[0])
        acts = keras.Input(top.input.shape[1:])
        model = keras.Model(acts, head(top(acts, training=False)))
        x = rng.normal(size=(s["batch"], *top.input.shape[1:])).astype("float32")
    else:
        image = keras.Input(extractor.input.shape[1:])
        model = keras.Model(image, head(extractor(keras.layers.RandomFlip("horizontal")(image),
                                                  training=False)))
        x = rng.uniform(0, 255, (s["batch"], 32, 32, 3)).astype("float32")
    model = in_precision(model, s["precision"])
    model.compile(keras.optimizers.AdamW(1e-4), "sparse_categorical_crossentropy",
                  jit_compile=s["jit"])
    y = rng.integers(0, 10, s["batch"])
    def batch() -> np.ndarray:
        """The images of one step (resized in Python on the any-size path, as Batches does)."""
        return np.asarray(keras.ops.image.resize(x, (s["size"],) * 2)) if s["any_size"] else x

    for _ in range(WARMUP):
        model.train_on_batch(batch(), y)
    begin = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(batch(), y)
    return steps * s["batch"] / (time.perf_counter() - begin)


def in_fresh_process(setting: dict, steps: int) -> float:
    """`measure` in a fresh interpreter, with the setting's thread counts."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if setting["threads"]:
        env.update(TF_NUM_INTRAOP_THREADS=str(setting["threads"]), TF_NUM_INTEROP_THREADS="2")
    output = subprocess.run([sys.executable, "-m", "bench.speed_levers", "--one",
                             json.dumps(setting), "--steps", str(steps)], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=True).stdout
    return float(output.strip().splitlines()[-1])


def main() -> None:
    """Measure every lever, print the table and write it into `--out`."""
    parser = script_parser(__doc__)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "tuning.md")
    parser.add_argument("--only", nargs="*", default=[], metavar="WORD",
                        help="the baseline and the levers whose name contains one of these")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(measure(json.loads(args.one), args.steps))
        return
    from transfer.runtime.devices import device_description

    start = time.perf_counter()
    levers = [LEVERS[0], *(lever for lever in LEVERS[1:]
                           if not args.only or any(word in lever[0] for word in args.only))]
    rounds = [[in_fresh_process({**BASELINE, **change}, args.steps) for _, change in levers]
              for _ in range(args.rounds)]
    best = [max(r[i] for r in rounds) for i in range(len(levers))]
    rows = [f"| {name} | {ips:.1f} | {ips / best[0]:.2f}x | "
            f"{', '.join(f'{r[i]:.1f}' for r in rounds)} |"
            for i, ((name, _), ips) in enumerate(zip(levers, best))]
    text = "\n".join([
        f"## Speed levers: the fine-tuning step, {device_description()}",
        "",
        f"`python -m bench.speed_levers --steps {args.steps} --rounds {args.rounds}"
        f"{''.join(f' --only {w!r}' for w in args.only)}`, "
        f"{time.perf_counter() - start:.0f} s in all. Training images/s of the whole-base "
        f"step (random weights), {args.steps} steps after {WARMUP} warm-up steps, best of "
        f"{args.rounds} alternating rounds, each lever in a fresh process.",
        "",
        "| lever | images/s | vs baseline | rounds |",
        "|---|---|---|---|",
        *rows])
    print(text)
    write_section(args.out, "speed-levers" + "".join(
        f"-{re.sub(r'[^a-z0-9]+', '-', w.lower())}" for w in args.only), text)


if __name__ == "__main__":
    main()
