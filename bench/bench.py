"""Benchmark: the pipeline against the textbook approach, both sides in one run on one machine.

    python -m bench.bench [--quick | --full | --time-to-accuracy] [--data PATH]
        [--out bench/results/results.md]

`--time-to-accuracy` (about 75 minutes on 2 CPU cores; never in CI): on all of CIFAR-10 with
EfficientNetLite0's ImageNet weights, the wall time from the image folder to a model with
TARGET test accuracy, this pipeline against the Keras guides' recipe (bench/keras_guide.py),
then row 1 and the engine table on that run's data. Otherwise, rows (ratios, each side
measured here, now):
1. `features` stage throughput vs the fastest way to run the same extractor on the same
   decoded arrays (picked by the engine table of bench/floor.py's ways: Keras `predict`, a
   `predict_on_batch` loop, a `tf.function` call, OpenVINO; each warmed up, best of three),
   the two alternating in fresh interpreters over all the stage's images, best of three;
2. fetch + features + train (10 head epochs) vs the Keras guide's recipe: the frozen base
   inside the model and 10 epochs of `fit` on the images, then one test evaluation;
3. one fine-tuning epoch on cached activations vs recomputing the whole base each step;
4. `dvc repro` with nothing changed, and which stages a `train` change runs;
5. peak resident memory of each stage;
6. `features` as one process vs as SHARDS processes at once (`--shard i/n`) then `--merge`.
The default workload is a stratified subset of an image-folder dataset (CIFAR-10 here);
`--full` takes all of it, `--quick` a generated dataset for the test suite. Each kind of run
rewrites its own section of the results file.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from bench import floor
from bench.common import (
    RESULTS,
    ROOT,
    SHARED_DATA,
    change_params,
    finish,
    generated_dataset,
    launch,
    params_of,
    project,
    run,
    script_parser,
    subset,
    unpacked,
    write_section,
)
from transfer.data.folders import find_layout, opened_folder
from transfer.params.overrides import nested
from transfer.runtime.devices import device_description

HEAD_EPOCHS = 10
SHARDS = 2
FLOOR_IMAGES, REPEATS = 1024, 3
TARGET = 0.87
# The cheapest settings found on the validation split (bench/results/tuning.md, docs/speed.md).
OURS_TO_TARGET = {"model": {"backbone": "EfficientNetLite0", "weights": "imagenet",
                            "input_size": 96},
                  "finetune": {"layers": "all", "epochs": 2}}
GUIDE_TO_TARGET = ["--input-size", "96", "--head-epochs", "10", "--finetune-epochs", "50",
                   "--layers", "20", "--cap-minutes", "55"]
SPEED_SETTINGS = [("float32", False), ("float32", True), ("mixed_bfloat16", False),
                  ("mixed_float16", False)]


@dataclass(frozen=True)
class Workload:
    """What the benchmark runs on: backbone, input size, images per class (None: all)."""

    name: str
    backbone: str
    input_size: int
    train_per_class: int | None
    test_per_class: int | None
    batch_size: int = 64
    finetune_layers: int = 20


WORKLOADS = {
    "quick": Workload("quick", "MobileNetV2", 32, 12, 2, batch_size=16, finetune_layers=10),
    "default": Workload("default", "EfficientNetB0", 224, 200, 10),
    "full": Workload("full", "EfficientNetB0", 224, None, None),
}


@dataclass
class Row:
    """One line of the results table."""

    number: int
    comparison: str
    workload: str
    ours: str
    theirs: str
    ratio: float | None
    target: str
    met: bool

    def markdown(self) -> str:
        """The row as a Markdown table line."""
        ratio = "—" if self.ratio is None else f"{self.ratio:.2f}x"
        return (f"| {self.number} | {self.comparison} | {self.workload} | {self.ours} | "
                f"{self.theirs} | {ratio} | {self.target} | {'yes' if self.met else 'NO'} |")


def feature_files(repo: Path) -> dict[str, bytes]:
    """The bytes of every file of `features/`, by name."""
    return {p.name: p.read_bytes() for p in sorted((repo / "features").iterdir())}


def sharded_features(repo: Path) -> tuple[float, float, float, bool]:
    """Seconds of `features` in one process, of SHARDS `--shard` processes at once and of
    `--merge`, each a fresh interpreter, and whether the merged files equal one process's."""
    stage = (sys.executable, "-m", "transfer.features")
    _, single = run(repo, *stage)
    expected = feature_files(repo)
    begin = time.perf_counter()
    for process in [launch(repo, *stage, "--shard", f"{i}/{SHARDS}") for i in range(SHARDS)]:
        finish(process)
    shards = time.perf_counter() - begin
    _, merge = run(repo, *stage, "--merge", str(SHARDS))
    return single, shards, merge, feature_files(repo) == expected


def workload_sections(w: Workload) -> dict:
    """The params of workload `w`: random weights, short head training, one fine-tuning epoch."""
    return {"model": {"backbone": w.backbone, "input_size": w.input_size, "weights": "none"},
            "features": {"batch_size": w.batch_size},
            "train": {"epochs": HEAD_EPOCHS, "patience": HEAD_EPOCHS},
            "finetune": {"layers": w.finetune_layers, "epochs": 1, "batch_size": w.batch_size}}


def stage_memory(output: str) -> dict[str, float]:
    """Peak resident GB of each stage, from the line every stage prints when it ends."""
    return {m[1]: float(m[2]) for m in
            re.finditer(r"^(\w+): [\d.]+ s wall, peak memory ([\d.]+) GB, ", output, re.M)}


def engine_table(repo: Path, batch_size: int, count: int) -> list[tuple[str, float, float]]:
    """Each way of bench/floor.py to run the project's extractor over the same `count` decoded
    images (raw pixels in, resizing inside the model), in this process: (name, images/s,
    spread). Every way is warmed up on one batch and timed REPEATS times; the best time
    counts, and spread is the slowest repeat's time over the best's, less one."""
    import keras

    x = floor.images(repo, count)
    model = keras.models.load_model(repo / "models/extractor.keras")
    table = []
    for name, way in floor.ways(model, batch_size).items():
        times = [floor.seconds(way, x, batch_size) for _ in range(REPEATS)]
        table.append((name, len(x) / min(times), max(times) / min(times) - 1))
    return table


def floor_row(repo: Path, batch_size: int, where: str,
              table: list[tuple[str, float, float]]) -> Row:
    """Row 1: the `features` stage's throughput over the fastest way of the engine table's, on
    all the stage's images. REPEATS rounds, each running the stage (as `dvc repro` does) and
    then that way (bench/floor.py), each in a fresh interpreter; best of each. Met at >= 0.9x
    and at most the noise above 1x: the larger spread between the rounds (slowest over best,
    less one) of the two sides, at least 2%. The stage's metrics file is left as it was."""
    name = max(table, key=lambda way: way[1])[0]
    metrics = repo / "metrics/features.json"
    kept = metrics.read_bytes()
    stage, fastest = [], []
    for _ in range(REPEATS):
        run(repo, sys.executable, "-m", "transfer.features")
        stage.append(json.loads(metrics.read_text())["images_per_second"])
        output, _ = run(ROOT, sys.executable, "-m", "bench.floor", str(repo), name,
                        "--batch-size", str(batch_size))
        fastest.append(json.loads(output.strip().splitlines()[-1])["images_per_second"])
    metrics.write_bytes(kept)
    features = json.loads(kept)
    ratio = max(stage) / max(fastest)
    noise = max(max(ips) / min(ips) - 1 for ips in (stage, fastest))
    return Row(1, f"`features` stage ({features['engine']}) vs the fastest way to run the "
               f"same extractor on the same {features['images']} arrays ({name}), each in "
               f"{REPEATS} interleaved fresh processes, best of each; the rounds vary by up to "
               f"{noise:.1%} (stage: {', '.join(f'{v:.0f}' for v in stage)}; fastest way: "
               f"{', '.join(f'{v:.0f}' for v in fastest)}) (images/s)", where,
               f"{max(stage):.1f}", f"{max(fastest):.1f}", ratio,
               f">= 0.9x, <= {1 + max(noise, 0.02):.2f}x",
               0.9 <= ratio <= 1 + max(noise, 0.02))


def speed_params(repo: Path, w: Workload, count: int) -> list[tuple[str, float]]:
    """Images/s of the `features` stage's own loop under each `features.precision` and
    `features.jit_compile` setting, float32 without XLA first."""
    from transfer.data.arrays import load_split
    from transfer.models.backbones import build_extractor
    from transfer.models.engines import predict_batches
    from transfer.models.precision import in_precision

    x, _ = load_split(repo / "data/prepared", "train")
    x = np.asarray(x[:count - count % w.batch_size])
    speeds = []
    for precision, jit in SPEED_SETTINGS:  # a new model each time: predict functions are cached
        runner = in_precision(build_extractor(w.backbone, "none", w.input_size, x.shape[1]),
                              precision)
        out = np.empty((len(x), runner.output.shape[-1]), np.float32)
        runner.jit_compile = jit
        predict_batches(runner.predict_on_batch, x[:w.batch_size], w.batch_size, out)  # trace
        start = time.perf_counter()
        predict_batches(runner.predict_on_batch, x, w.batch_size, out)
        seconds = time.perf_counter() - start
        speeds.append((f"{precision}{', XLA' if jit else ''}", len(x) / seconds))
    return speeds


def textbook(data: Path, w: Workload) -> float:
    """Seconds for the Keras guide's recipe: load the images, build base-inside-the-model,
    fit the same head for 10 epochs on the images (validating each epoch), evaluate on test."""
    import keras

    from transfer.models.backbones import build_extractor
    from transfer.models.heads import build_head
    from transfer.params.training import TrainParams

    start = time.perf_counter()
    with opened_folder(data) as top:
        layout = find_layout(top)
        load = dict(image_size=(32, 32), batch_size=w.batch_size, label_mode="int", seed=42)
        train = keras.utils.image_dataset_from_directory(
            layout.train, validation_split=0.1, subset="training", **load)
        val = keras.utils.image_dataset_from_directory(
            layout.train, validation_split=0.1, subset="validation", **load)
        test = keras.utils.image_dataset_from_directory(layout.test, shuffle=False, **load)
        classes = len(train.class_names)
        base = build_extractor(w.backbone, "none", w.input_size, 32)
        image = keras.Input((32, 32, 3))
        head = build_head(base.output.shape[-1], classes, TrainParams(epochs=HEAD_EPOCHS))
        model = keras.Model(image, head(base(image, training=False)))
        model.compile(keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        model.fit(train, validation_data=val, epochs=HEAD_EPOCHS, verbose=0)
        model.evaluate(test, verbose=0)
    return time.perf_counter() - start


def finetune_epochs(repo: Path, w: Workload) -> tuple[float, float, float]:
    """Seconds of (building the activation cache, one epoch on it, one epoch recomputing the
    whole base each step), with the stage's own code and a horizontal flip on both sides."""
    import keras
    import tensorflow as tf

    from transfer import finetune
    from transfer.data.arrays import load_split
    from transfer.models.unfreezing import unfreeze_top
    from transfer.params.whole import load_params
    from transfer.training import auto_params
    from transfer.training.activation_cache import on_activations
    from transfer.training.distribute import as_dataset

    train, val = load_split(repo / "data/prepared", "train"), load_split(repo / "data/prepared",
                                                                         "val")
    with contextlib.chdir(repo):
        params = load_params()
    params = params.model_copy(update={"finetune": auto_params.resolved_finetune(
        params.finetune, len(train[1]))})  # as the stage resolves `auto`
    seconds, one_device = [], tf.distribute.get_strategy()
    for path in ("activations", "images"):
        extractor = keras.models.load_model(repo / "models/extractor.keras")
        head = keras.models.load_model(repo / "models/head.keras")
        top = unfreeze_top(extractor, w.finetune_layers)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            if path == "activations":
                model, batches, val_batches = on_activations(
                    extractor, head, top[0], train, val, params, one_device, Path(tmp))
                seconds.append(time.perf_counter() - start)
                start = time.perf_counter()
            else:
                model, batches, val_batches = finetune.on_images(extractor, head, train, val,
                                                                 params, one_device)
            finetune.compile_for(model, params.finetune, steps=len(batches))
            model.fit(as_dataset(batches), validation_data=as_dataset(val_batches), epochs=1,
                      verbose=0)
            seconds.append(time.perf_counter() - start)
    return seconds[0], seconds[1], seconds[2]


def benchmark(w: Workload, source: Path | None, work: Path,
              ) -> tuple[list[Row], list[tuple[str, float, float]], list[tuple[str, float]]]:
    """Run every comparison on workload `w` in `work`; the table rows, the engine table and
    the speed params' throughputs."""
    if w.name == "quick":
        data = generated_dataset(work / "data")
    elif w.train_per_class is None:
        data = source
    else:
        data = subset(source, work / "data", w.train_per_class, w.test_per_class)
    repo = project(work, data, workload_sections(w))
    first, ours = run(repo, "dvc", "repro", "train")
    features = json.loads((repo / "metrics/features.json").read_text())
    images = features["images"]
    machine = device_description()
    where = f"{w.backbone} {w.input_size} px, {{}} images, {machine}"
    rows = []

    table = engine_table(repo, w.batch_size, min(FLOOR_IMAGES, images))
    rows.append(floor_row(repo, w.batch_size, where.format(images), table))
    speeds = speed_params(repo, w, min(256, images))

    theirs = textbook(data, w)
    n_train = int(np.load(repo / "data/prepared/train_y.npy").size
                  + np.load(repo / "data/prepared/val_y.npy").size)
    rows.append(Row(2, f"fetch + features + train ({HEAD_EPOCHS} head epochs) vs base inside "
                    f"the model, {HEAD_EPOCHS} epochs of `fit` on images (s)",
                    where.format(f"{n_train} train+val, {images - n_train} test"),
                    f"{ours:.1f}", f"{theirs:.1f}", theirs / ours, ">= 5x", theirs / ours >= 5))

    rest, _ = run(repo, "dvc", "repro")
    cache_s, cached, recomputed = finetune_epochs(repo, w)
    rows.append(Row(3, f"one fine-tuning epoch (top {w.finetune_layers} layers, flip): cached "
                    f"activations vs whole base each step (s); cache built once in "
                    f"{cache_s:.1f} s", where.format(n_train), f"{cached:.1f}",
                    f"{recomputed:.1f}", recomputed / cached, ">= 3x", recomputed / cached >= 3))

    nothing, idle = run(repo, "dvc", "repro")
    rate = params_of(repo)["train"]["learning_rate"]
    change_params(repo, nested({"train.learning_rate": 2 * rate}))
    changed, _ = run(repo, "dvc", "repro", "train")
    skipped = re.findall(r"Stage '(\w+)' didn't change, skipping", changed)
    ran = re.findall(r"Running stage '(\w+)'", changed)
    rows.append(Row(4, f"`dvc repro` with nothing changed (s); after a `train` change, "
                    f"`dvc repro train` skipped {', '.join(skipped)} and ran {', '.join(ran)}",
                    where.format(images), f"{idle:.2f}", "—", None, "< 3 s",
                    idle < 3 and "features" in skipped and ran == ["train"]
                    and "up to date" in nothing))

    memory = stage_memory(first + rest)
    rows.append(Row(5, "peak resident memory per stage (GB): " + ", ".join(
                    f"{stage} {gb:.2f}" for stage, gb in memory.items()),
                    where.format(images), f"{max(memory.values()):.2f}", "—", None,
                    "<= 4 GB", max(memory.values()) <= 4))

    single, shards, merge, same = sharded_features(repo)
    rows.append(Row(6, f"`features`: one process vs {SHARDS} `--shard` processes at once on "
                    f"this machine, then `--merge` ({shards:.1f} s + {merge:.1f} s) (s); met: "
                    f"the merged files equal one process's, byte for byte", where.format(images),
                    f"{shards + merge:.1f}", f"{single:.1f}", single / (shards + merge),
                    "same files", same))
    return rows, table, speeds


def time_to_accuracy(source: Path, work: Path) -> tuple[dict, dict, Path]:
    """Seconds from the image folder to a model at TARGET, for the pipeline (fetch, features,
    train, finetune; then `evaluate` checks the target, untimed) and for the Keras guides'
    recipe; their records and the pipeline's project."""
    data = unpacked(source, work)
    repo = project(work, data, OURS_TO_TARGET)
    _, seconds = run(repo, "dvc", "repro", "finetune")
    run(repo, "dvc", "repro", "evaluate")
    tuned = json.loads((repo / "dvclive/finetune/metrics.json").read_text())
    test = json.loads((repo / "metrics/evaluate.json").read_text())["finetuned"]["accuracy"]
    ours = {"seconds": seconds, "best_val_accuracy": tuned["best_val_accuracy"],
            "test_accuracy": test, "reached": test >= TARGET}
    output, _ = run(ROOT, sys.executable, "-m", "bench.keras_guide", str(data),
                    "--target", str(TARGET), *GUIDE_TO_TARGET)
    guide = json.loads(output.strip().splitlines()[-1])
    return ours, guide, repo


def time_to_accuracy_section(source: Path, work: Path) -> str:
    """The Markdown of a `--time-to-accuracy` run: the headline row, row 1, the engines."""
    ours, guide, repo = time_to_accuracy(source, work)
    machine, m = device_description(), OURS_TO_TARGET["model"]
    model = f"{m['backbone']} ({m['weights']}) {m['input_size']} px"
    images = json.loads((repo / "metrics/features.json").read_text())["images"]
    batch = params_of(repo)["features"]["batch_size"]
    table = engine_table(repo, batch, FLOOR_IMAGES)
    row = floor_row(repo, batch, f"{model}, {images} images, {machine}", table)
    ratio = guide["seconds"] / ours["seconds"]
    bound = "" if guide["reached"] else "> "
    phases = ", ".join(f"{e['phase']} {e['val_accuracy']:.1%}" for e in guide["epochs"])
    return "\n".join([
        f"## Time to {TARGET:.0%} test accuracy: all of CIFAR-10, EfficientNetLite0 with "
        f"ImageNet weights, {machine}",
        "",
        "| side | settings | wall time (s) | best val. acc. | test acc. | reached |",
        "|---|---|---|---|---|---|",
        f"| this pipeline (fetch, features, train, finetune) | "
        f"{yaml.safe_dump(OURS_TO_TARGET, default_flow_style=True, width=1000).strip()} | "
        f"{ours['seconds']:.0f} | {ours['best_val_accuracy']:.1%} | "
        f"{ours['test_accuracy']:.1%} | {'yes' if ours['reached'] else 'NO'} |",
        f"| the Keras guides' recipe (`bench/keras_guide.py`) | {' '.join(GUIDE_TO_TARGET)} "
        f"| {guide['seconds']:.0f} | {guide['best_val_accuracy']:.1%} | "
        f"{guide['test_accuracy']:.1%} | {'yes' if guide['reached'] else 'no'} |",
        "",
        f"Ratio (the guide's time over ours): **{bound}{ratio:.1f}x** (target >= 5x"
        + ("" if guide["reached"] else "; the guide did not reach the target before its cap "
           "or its last epoch stopped it, so the ratio is a lower bound")
        + f"). The guide's validation accuracy per epoch: {phases}.",
        "",
        "| # | comparison | workload | ours | other | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|",
        row.markdown(),
        "",
        *engine_markdown(table, f"{model}, {FLOOR_IMAGES} CIFAR-10 images of 32 px, "
                                f"batch {batch}, {machine}"), ""])


def engine_markdown(table: list[tuple[str, float, float]], where: str) -> list[str]:
    """The engine table as Markdown lines."""
    keras_ips = table[1][1]
    return [f"### Engines: the same extractor on the same arrays, {where}", "",
            f"Each warmed up on one batch, then best of {REPEATS} passes.", "",
            "| way | images/s | vs `predict_on_batch` loop | spread of repeats |",
            "|---|---|---|---|",
            *(f"| {name} | {ips:.1f} | {ips / keras_ips:.2f}x | {spread:.1%} |"
              for name, ips, spread in table)]


def main() -> None:
    """Parse the arguments, run the benchmark, print its section and write it atomically."""
    parser = script_parser(__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="generated data, seconds-long")
    size.add_argument("--full", action="store_true", help="the whole dataset")
    size.add_argument("--time-to-accuracy", action="store_true",  # "%%": a % in argparse help
                      help=f"the wall time to {TARGET:.0%}% test accuracy, ours vs the guide's")
    parser.add_argument("--data", type=Path, default=SHARED_DATA,
                        help="image-folder dataset (directory or archive)")
    parser.add_argument("--out", type=Path, default=RESULTS / "results.md")
    args = parser.parse_args()
    if not args.quick and not args.data.exists():
        sys.exit(f"bench: --data {args.data} does not exist; pass an image-folder dataset "
                 f"(train/<class>/, test/<class>/) or use --quick")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        if args.time_to_accuracy:
            name, body = "time-to-accuracy", time_to_accuracy_section(args.data.resolve(),
                                                                      Path(work))
            command = "python -m bench.bench --time-to-accuracy"
        else:
            w = WORKLOADS["quick" if args.quick else "full" if args.full else "default"]
            rows, table, speeds = benchmark(w, args.data.resolve(), Path(work))
            name, command = w.name, "python -m bench.bench" + (
                f" --{w.name}" if w.name != "default" else "")
            where = f"{w.backbone} {w.input_size} px, batch {w.batch_size}, {device_description()}"
            body = "\n".join([
                f"## {w.name.capitalize()} workload: random weights (`model.weights=none`), "
                f"same architecture and cost as ImageNet weights",
                "",
                "Ratios are the other side's time over ours (row 1: our throughput over the "
                "fastest way's).",
                "",
                "| # | comparison | workload | ours | other | ratio | target | met |",
                "|---|---|---|---|---|---|---|---|",
                *(row.markdown() for row in rows),
                "",
                *engine_markdown(table, where),
                "",
                f"### Speed params: `features` on Keras, {where}",
                "",
                "| features.precision, jit_compile | images/s | vs float32 |",
                "|---|---|---|",
                *(f"| {setting} | {ips:.1f} | {ips / speeds[0][1]:.2f}x |"
                  for setting, ips in speeds)])
    heading, rest = body.split("\n\n", 1)
    text = f"{heading}\n\n`{command}`, {time.perf_counter() - start:.0f} s in all.\n\n{rest}\n"
    print(text)
    write_section(args.out, name, text)


if __name__ == "__main__":
    main()
