"""The accuracy frontier: test accuracy against wall time on all of CIFAR-10, one curve per recipe.

    python -m bench.frontier [--data PATH] [--recipes 96px-5ep,defaults,...]
        [--out bench/results/results.md] [--keep FOLDER]

Each recipe runs the pipeline (`dvc repro evaluate`: fetch, features, train, finetune,
evaluate) in a fresh project copy on the image folder, EfficientNetLite0 with ImageNet weights,
one recipe after the other on this machine. Every fine-tuning epoch's model is saved on the
way (TRANSFER_EPOCH_MODELS, see `transfer.training.fitting`) and scored on the test set afterwards,
untimed, as the recipe's exported model would score it (flip averaging with `evaluate.flip`):
the test set only places the points, every choice was made on validation. A point's time is
the wall time from the start of `fetch` to the end of that epoch; the head's point is
when `train` saved it. Writes the section "frontier" of `--out` (the first wall time at which
each recipe reached 87, 90, 93 and 95%) and its figure, `bench/results/frontier.png`; other sets of
`--recipes` than DEFAULT write "frontier-<recipes>" and its own figure. A recipe already
finished in the `--keep` folder is not rerun: its times come from its stage records (from the
start of the `fetch` process), and an archive unpacked there is reused. Never in CI: each
recipe takes about half an hour on 2 CPU cores.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import keras

from bench.common import (
    RESULTS,
    SHARED_DATA,
    change_params,
    params_of,
    probabilities,
    project,
    run,
    script_parser,
    unpacked,
    write_section,
)
from transfer.params.overrides import merged
from transfer.runtime.devices import device_description
from transfer.runtime.files import atomic_path
from transfer.training.activation_cache import split_below
from transfer.training.fitting import EPOCH_MODELS

THRESHOLDS = (0.87, 0.90, 0.93, 0.95)
COMMON = {"model": {"backbone": "EfficientNetLite0", "weights": "imagenet"}}
WHOLE_96 = {"model": {"input_size": 96}, "finetune": {"layers": "all", "epochs": 5}}
RECIPES = {  # name: params over the project's defaults, on top of COMMON
    "96px-5ep-noflip": {**WHOLE_96, "evaluate": {"flip": False}},  # the first default
    "96px-5ep": WHOLE_96,  # then: flip averaging in the exported model
    "128px-3ep": {"model": {"input_size": 128}, "finetune": {"layers": "all", "epochs": 3}},
    "defaults": {},  # the project's params.yaml as it is
    "96px-1ep-cached": {"model": {"input_size": 96},  # blocks 1-4 of Lite0 frozen and cached
                        "finetune": {"layers": 78, "epochs": 1}},
    "64px-1ep-cached": {"model": {"input_size": 64},  # the 5-minute floor: every stage cheaper
                        "finetune": {"layers": 78, "epochs": 1}},
}
# The recipes run without --recipes (section "frontier"):
DEFAULT = ("96px-5ep", "defaults", "96px-1ep-cached", "64px-1ep-cached")
# A recipe that differs from an earlier one in `evaluate` only shares its training run: its
# params are applied to that project and `dvc repro evaluate` reruns the one stage; its wall
# time is the earlier recipe's to the end of `finetune` plus its own `evaluate`.


def scored_epochs(repo: Path, epochs: Path, start: float) -> list[tuple[float, float]]:
    """(seconds from `start`, test accuracy) of the head and of every fine-tuning epoch, as
    the project's current params evaluate them."""
    import numpy as np

    x = np.load(repo / "data/prepared/test_x.npy").astype("float32")
    y = np.load(repo / "data/prepared/test_y.npy")
    evaluation = json.loads((repo / "metrics/evaluate.json").read_text())
    points = [((repo / "models/head.keras").stat().st_mtime - start,
               evaluation["head"]["accuracy"])]
    size = json.loads((repo / "metrics/resolved/fetch.json").read_text()
                      )["params"]["model"]["input_size"]
    flip = params_of(repo)["evaluate"]["flip"]

    def resized(batch: np.ndarray) -> np.ndarray:
        """The batch at the model's input size (an any-size, progressive model's input)."""
        return np.asarray(keras.ops.image.resize(batch, (size, size)))

    final = keras.models.load_model(repo / "models/finetuned.keras", compile=False)
    for path in sorted((epochs / "finetune").glob("epoch-*.keras")):
        model = keras.models.load_model(path, compile=False)
        if model.input.shape[1:] != final.input.shape[1:]:
            model = on_images(final, model)
        fit = None if model.input.shape[1] else resized
        probs = probabilities(model, x, fit)
        if flip:
            probs += probabilities(model, x[:, :, ::-1], fit)
        points.append((path.stat().st_mtime - start, float((probs.argmax(1) == y).mean())))
    return points


def on_images(final: keras.Model, epoch: keras.Model) -> keras.Model:
    """An epoch's model trained on the activation cache (cached activations in, probabilities
    out) as a model of images: the frozen bottom of the run's `final` model below it. The
    bottom never trains, so the final model's is every epoch's."""
    top = next(layer for layer in epoch.layers if isinstance(layer, keras.Model))
    first = next(layer for layer in top.layers if not isinstance(layer, keras.layers.InputLayer))
    bottom, _ = split_below(final, final.get_layer(first.name))
    return keras.Model(bottom.input, epoch(bottom.output))


def sections_of(name: str) -> dict:
    """The params of recipe `name`: COMMON, its own merged in."""
    return merged(COMMON, RECIPES[name])


def shared_training(name: str, done: list[dict]) -> dict | None:
    """The earlier result whose recipe differs from `name`'s in `evaluate` only, if any."""
    mine = {k: v for k, v in sections_of(name).items() if k != "evaluate"}
    return next((r for r in done if mine == {k: v for k, v in sections_of(r["name"]).items()
                                             if k != "evaluate"}), None)


def recorded_times(repo: Path) -> tuple[float, float, float]:
    """A finished run's start (the `fetch` process's, from its stage record), the seconds from
    there to the end of `finetune`, and `evaluate`'s seconds (`metrics/time/`)."""
    times = repo / "metrics/time"
    start = (times / "fetch.json").stat().st_mtime - json.loads(
        (times / "fetch.json").read_text())["seconds"]
    return (start, (times / "finetune.json").stat().st_mtime - start,
            json.loads((times / "evaluate.json").read_text())["seconds"])


def run_recipe(name: str, data: Path, work: Path, done: list[dict]) -> dict:
    """Run one recipe from the image folder through `evaluate` (sharing an earlier recipe's
    training where it can, taking a finished run in `work` as it is); its points and
    summary."""
    base = shared_training(name, done)
    folder = work / name
    resumed = base is None and (folder / "project/metrics/evaluate.json").exists()
    if resumed:
        repo = folder / "project"
        start, trained, evaluated = recorded_times(repo)
    elif base is None:
        folder.mkdir()
        repo = project(folder, data, sections_of(name))
        os.environ[EPOCH_MODELS] = str(folder / "epochs")
        start = time.time()
        _, trained = run(repo, "dvc", "repro", "finetune")
        del os.environ[EPOCH_MODELS]
    else:
        repo, folder, start, trained = base["repo"], base["folder"], base["start"], base["trained"]
        change_params(repo, {"evaluate": merged(params_of()["evaluate"],
                                                sections_of(name).get("evaluate", {}))})
    if not resumed:
        _, evaluated = run(repo, "dvc", "repro", "evaluate")
    evaluation = json.loads((repo / "metrics/evaluate.json").read_text())
    return {"name": name, "seconds": trained + evaluated, "repo": repo, "folder": folder,
            "start": start, "trained": trained, "shares": base["name"] if base else None,
            "resumed": resumed,
            "points": scored_epochs(repo, folder / "epochs", start),
            "final": evaluation["finetuned"]["accuracy"]}


def first_reached(points: list[tuple[float, float]], threshold: float) -> float | None:
    """The first time at which the accuracy is at least `threshold` (None: never)."""
    return next((t for t, accuracy in points if accuracy >= threshold), None)


def figure(results: list[dict], path: Path) -> None:
    """Test accuracy against wall time, one curve per recipe, the thresholds dotted."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lowest = min(accuracy for r in results for _, accuracy in r["points"])
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for r in results:
        t, accuracy = zip(*r["points"])
        ax.plot([s / 60 for s in t], [100 * a for a in accuracy], marker="o", label=r["name"])
    for threshold in THRESHOLDS:
        ax.axhline(100 * threshold, color="grey", linestyle=":", linewidth=0.8)
    ax.set(xlabel="wall time from the image folder (min)", ylabel="test accuracy (%)",
           ylim=(min(70, 5 * math.floor(20 * lowest)), 100))
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=150)


def markdown(results: list[dict], seconds: float, command: str, picture: str) -> str:
    """The section: one row per recipe, the thresholds' first times, the points."""
    def cell(r: dict, threshold: float) -> str:
        """When `r` first reached `threshold`, or its best."""
        t = first_reached(r["points"], threshold)
        return (f"{t / 60:.1f} min" if t is not None else
                f"not reached (best {max(a for _, a in r['points']):.1%})")

    rows = [f"| {r['name']} | {' | '.join(cell(r, th) for th in THRESHOLDS)} | "
            f"{r['final']:.2%} | {r['seconds'] / 60:.1f} min |" for r in results]
    points = [f"- {r['name']}: " + ", ".join(f"{t / 60:.1f} min {a:.2%}" for t, a in r["points"])
              for r in results]
    return "\n".join([
        f"## Accuracy frontier: all of CIFAR-10 from the image folder, EfficientNetLite0 with "
        f"ImageNet weights, {device_description()}",
        "",
        f"`{command}`, {seconds:.0f} s in all. Wall time from the start of `fetch` to the end "
        "of the first epoch whose model reaches each test accuracy (the head's point: the end "
        "of `train`); the recipes ran one after the other"
        + "".join(f"; {r['name']} shares the training run of {r['shares']} (it differs in "
                  "`evaluate` only)" for r in results if r["shares"])
        + "".join(f"; {r['name']} was a finished run in the `--keep` folder, taken as it was "
                  "(timed from its stage records)" for r in results if r["resumed"]) + ".",
        "",
        "| recipe | 87% | 90% | 93% | 95% | the pipeline's test acc. | fetch to evaluate |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"![Test accuracy against wall time]({picture})",
        "",
        "Points (wall time, test accuracy; the head first):",
        "",
        *points])


def main() -> None:
    """Run the recipes one after the other; write the table and the figure."""
    parser = script_parser(__doc__)
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--recipes", default=",".join(DEFAULT))
    parser.add_argument("--out", type=Path, default=RESULTS / "results.md")
    parser.add_argument("--keep", type=Path,
                        help="work in this folder and keep it (the projects, their models); "
                             "a recipe finished there before is taken as it is")
    args = parser.parse_args()
    names = args.recipes.split(",")
    unknown = [n for n in names if n not in RECIPES]
    if unknown or not args.data.exists():
        sys.exit(f"frontier: unknown recipe {unknown} (known: {', '.join(RECIPES)})" if unknown
                 else f"frontier: --data {args.data} does not exist: pass CIFAR-10 as an image "
                      "folder (train/<class>/, test/<class>/)")
    begin = time.perf_counter()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    with (contextlib.nullcontext(str(args.keep.resolve())) if args.keep else
          tempfile.TemporaryDirectory(prefix="frontier-")) as work:
        kept = Path(work) / "data"  # an archive unpacked there by an earlier --keep run
        data = kept if args.keep and kept.is_dir() else unpacked(args.data.resolve(), Path(work))
        results = []
        for name in names:
            results.append(run_recipe(name, data, Path(work), results))
            print(json.dumps({k: results[-1][k] for k in ("name", "seconds", "points", "final")}),
                  flush=True)
    name = "frontier" + ("" if tuple(names) == DEFAULT else "-" + "-".join(names))
    figure(results, args.out.parent / f"{name}.png")
    text = markdown(results, time.perf_counter() - begin,
                    "python -m bench.frontier --recipes " + ",".join(names), f"{name}.png")
    print(text)
    write_section(args.out, name, text)


if __name__ == "__main__":
    main()
