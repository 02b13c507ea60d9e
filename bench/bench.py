"""Benchmark: the pipeline against the textbook approach, both sides in one run on one machine.

    python bench/bench.py [--quick | --full] [--data PATH] [--out bench/results.md]

Rows (ratios, each side measured here, now):
1. `features` stage throughput vs a bare `base.predict` on decoded, resized in-memory arrays;
2. fetch + features + train (10 head epochs) vs the Keras guide's recipe: the frozen base
   inside the model and 10 epochs of `fit` on the images, then one test evaluation;
3. one fine-tuning epoch on cached activations vs recomputing the whole base each step;
4. `dvc repro` with nothing changed, and which stages a `train` change runs;
5. peak resident memory of each stage;
6. `features` as one process vs as SHARDS processes at once (`--shard i/n`) then `--merge`.
The default workload is a stratified subset of an image-folder dataset (CIFAR-10 here);
`--full` takes all of it, `--quick` a generated dataset for the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from transfer.data import find_layout, opened_folder, scan_folder  # noqa: E402
from transfer.runtime import atomic_path, device_description  # noqa: E402

SHARED_DATA = ROOT.parent / "shared/data/cifar10-jpg.tar.gz"
HEAD_EPOCHS = 10
SHARDS = 2
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


def generated_dataset(root: Path, classes: int = 10, train: int = 12, test: int = 2) -> Path:
    """Random 32 px JPEGs in train/<class>/ and test/<class>/ (for --quick)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg")
    return root


def subset(source: Path, dest: Path, train: int, test: int) -> Path:
    """Copy the first `train` and `test` images of every class of an image-folder dataset."""
    with opened_folder(source) as top:
        dataset = scan_folder(find_layout(top))
        for split, per_class in (("train", train), ("test", test)):
            files = getattr(dataset, split)
            taken: dict[int, int] = {}
            for path, label in zip(files.paths, files.labels):
                if taken.get(label, 0) < per_class:
                    taken[label] = taken.get(label, 0) + 1
                    folder = dest / split / dataset.classes[label]
                    folder.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, folder / path.name)
    return dest


def launch(repo: Path, *args: str) -> subprocess.Popen:
    """Start a command in `repo` with this interpreter's tools on PATH."""
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "TF_CPP_MIN_LOG_LEVEL": "3",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen(args, cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
    """Wait for a launched command; its output (exits the benchmark if it failed)."""
    output, _ = process.communicate()
    if process.returncode:
        sys.exit(f"bench: {' '.join(process.args)} failed:\n{output[-6000:]}")
    return output


def run(repo: Path, *args: str) -> tuple[str, float]:
    """Run a command in `repo` (see `launch`); its output and seconds."""
    begin = time.perf_counter()
    output = finish(launch(repo, *args))
    return output, time.perf_counter() - begin


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


def project(work: Path, data: Path, w: Workload) -> Path:
    """A fresh git + DVC copy of this project configured for the workload."""
    repo = work / "project"
    repo.mkdir()
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "report/templates", repo / "report/templates")
    shutil.copy(ROOT / "report/notes.md", repo / "report/notes.md")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(source="folder", path=str(data), fraction=1.0)
    params["model"].update(backbone=w.backbone, input_size=w.input_size, weights="none")
    params["features"]["batch_size"] = w.batch_size
    params["train"].update(epochs=HEAD_EPOCHS, patience=HEAD_EPOCHS)
    params["finetune"].update(layers=w.finetune_layers, epochs=1, batch_size=w.batch_size)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                    [*git, "commit", "-qm", "bench"]):
        run(repo, *command)
    return repo


def stage_memory(output: str) -> dict[str, float]:
    """Peak resident GB of each stage, from the line every stage prints when it ends."""
    return {m[1]: float(m[2]) for m in
            re.finditer(r"^(\w+): [\d.]+ s wall, peak memory ([\d.]+) GB$", output, re.M)}


def bare_predict(repo: Path, w: Workload, count: int) -> float:
    """Images/s of `base.predict` on already decoded and resized float32 arrays in memory."""
    import keras
    import tensorflow as tf

    from transfer.data import load_split

    x, _ = load_split(repo / "data/prepared", "train")
    x = tf.image.resize(np.asarray(x[:count], np.float32), (w.input_size, w.input_size)).numpy()
    base = getattr(keras.applications, w.backbone)(
        include_top=False, weights=None, pooling="avg", input_shape=x.shape[1:])
    base.predict(x[:w.batch_size], batch_size=w.batch_size, verbose=0)
    start = time.perf_counter()
    base.predict(x, batch_size=w.batch_size, verbose=0)
    return len(x) / (time.perf_counter() - start)


def speed_params(repo: Path, w: Workload, count: int) -> list[tuple[str, float]]:
    """Images/s of the `features` stage's own loop under each `features.precision` and
    `features.jit_compile` setting, float32 without XLA first."""
    from transfer.backbones import build_extractor, in_precision, predict_batches
    from transfer.data import load_split

    x, _ = load_split(repo / "data/prepared", "train")
    x = np.asarray(x[:count - count % w.batch_size])
    speeds = []
    for precision, jit in SPEED_SETTINGS:  # a new model each time: predict functions are cached
        runner = in_precision(build_extractor(w.backbone, "none", w.input_size, x.shape[1]),
                              precision)
        out = np.empty((len(x), runner.output.shape[-1]), np.float32)
        runner.jit_compile = jit
        predict_batches(runner, x[:w.batch_size], w.batch_size, out)  # trace and compile
        start = time.perf_counter()
        predict_batches(runner, x, w.batch_size, out)
        seconds = time.perf_counter() - start
        speeds.append((f"{precision}{', XLA' if jit else ''}", len(x) / seconds))
    return speeds


def textbook(data: Path, w: Workload) -> float:
    """Seconds for the Keras guide's recipe: load the images, build base-inside-the-model,
    fit the same head for 10 epochs on the images (validating each epoch), evaluate on test."""
    import keras

    from transfer.backbones import build_extractor
    from transfer.params import TrainParams
    from transfer.train import build_head

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
    from transfer.backbones import unfreeze_top
    from transfer.data import load_split
    from transfer.distribute import as_dataset
    from transfer.params import load_params

    with contextlib.chdir(repo):
        params = load_params()
    train, val = load_split(repo / "data/prepared", "train"), load_split(repo / "data/prepared",
                                                                         "val")
    seconds, one_device = [], tf.distribute.get_strategy()
    for path in ("activations", "images"):
        extractor = keras.models.load_model(repo / "models/extractor.keras")
        head = keras.models.load_model(repo / "models/head.keras")
        top = unfreeze_top(extractor, w.finetune_layers)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            if path == "activations":
                model, batches, val_batches = finetune.on_activations(
                    extractor, head, top[0], train, val, params, one_device, Path(tmp))
                seconds.append(time.perf_counter() - start)
                start = time.perf_counter()
            else:
                model, batches, val_batches = finetune.on_images(extractor, head, train, val,
                                                                 params, one_device)
            model.compile(keras.optimizers.Adam(1e-5), loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            model.fit(as_dataset(batches), validation_data=as_dataset(val_batches), epochs=1,
                      verbose=0)
            seconds.append(time.perf_counter() - start)
    return seconds[0], seconds[1], seconds[2]


def benchmark(w: Workload, source: Path | None,
              work: Path) -> tuple[list[Row], list[tuple[str, float]]]:
    """Run every comparison on workload `w` in `work`; the table rows and the speed params'
    throughputs."""
    if w.name == "quick":
        data = generated_dataset(work / "data")
    elif w.train_per_class is None:
        data = source
    else:
        data = subset(source, work / "data", w.train_per_class, w.test_per_class)
    repo = project(work, data, w)
    first, ours = run(repo, "dvc", "repro", "train")
    features = json.loads((repo / "metrics/features.json").read_text())
    images = features["images"]
    machine = device_description()
    where = f"{w.backbone} {w.input_size} px, {{}} images, {machine}"
    rows = []

    bare = bare_predict(repo, w, min(512, images))
    ips = features["images_per_second"]
    rows.append(Row(1, "`features` stage vs bare `base.predict` (images/s)",
                    where.format(images), f"{ips:.1f}", f"{bare:.1f}", ips / bare,
                    ">= 0.9x", ips / bare >= 0.9))
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
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["learning_rate"] *= 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
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
    return rows, speeds


def main() -> None:
    """Parse the arguments, run the benchmark, print the table and write it atomically."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="generated data, seconds-long")
    size.add_argument("--full", action="store_true", help="the whole dataset")
    parser.add_argument("--data", type=Path, default=SHARED_DATA,
                        help="image-folder dataset (directory or archive)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results.md")
    args = parser.parse_args()
    w = WORKLOADS["quick" if args.quick else "full" if args.full else "default"]
    if not args.quick and not args.data.exists():
        sys.exit(f"bench: --data {args.data} does not exist; pass an image-folder dataset "
                 f"(train/<class>/, test/<class>/) or use --quick")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as work:
        rows, speeds = benchmark(w, args.data.resolve(), Path(work))
    table = "\n".join([
        f"# Benchmark: {w.name} workload",
        "",
        f"`python bench/bench.py{' --' + w.name if w.name != 'default' else ''}`, "
        f"{time.perf_counter() - start:.0f} s in all. Random weights (`model.weights=none`): "
        f"same architecture and cost as ImageNet weights. Ratios are the other side's time "
        f"over ours (row 1: our throughput over theirs).",
        "",
        "| # | comparison | workload | ours | other | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|",
        *(row.markdown() for row in rows),
        "",
        f"## Speed params: `features` throughput, {w.backbone} {w.input_size} px, batch "
        f"{w.batch_size}, {device_description()}",
        "",
        "| features.precision, jit_compile | images/s | vs float32 |",
        "|---|---|---|",
        *(f"| {name} | {ips:.1f} | {ips / speeds[0][1]:.2f}x |" for name, ips in speeds), ""])
    print(table)
    with atomic_path(args.out) as tmp:
        tmp.write_text(table)


if __name__ == "__main__":
    main()
