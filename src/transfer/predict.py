"""Classify new images with the exported model: a table, JSON, or a figure of each image.

    python -m transfer.predict IMAGE_OR_FOLDER [--model models/model.keras] [--top 3]
        [--classes data/prepared/classes.json] [--resize crop|squash] [--json]
        [--plot predictions.png] [--engine auto|keras|openvino]

Reads any size, mode and format that `fetch` reads (PNG, JPEG, BMP, GIF, WebP), upright by
its EXIF orientation, and makes it square as the training data was (`data.resize`, recorded
in `dataset.json` beside the classes); a folder is searched recursively. Class names come
from the dataset the model was trained on. `--engine` runs the model on Keras or OpenVINO
(`transfer.models.engines`; auto: OpenVINO for many images on a CPU). `show_example` draws the
prediction for an image of the prepared dataset itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import keras
import numpy as np

from transfer.data.arrays import load_split
from transfer.data.folders import IMAGE_SUFFIXES
from transfer.data.images import decode_image
from transfer.models import engines
from transfer.models import temperature as temperature_scaling
from transfer.paper import charts
from transfer.params.fields import ENGINES, RESIZE_MODES
from transfer.runtime.errors import UserError
from transfer.runtime.files import read_json
from transfer.runtime.paths import CLASSES, DATASET, EXPORTS, PREPARED
from transfer.runtime.stage import run_stage

MODEL = EXPORTS[0]
PLOTTED = 12  # images drawn by --plot at most
CHUNK = 256  # images decoded at a time
Ranked = list[tuple[str, float]]


def image_paths(target: Path) -> list[Path]:
    """`target` itself, or every image file under the folder `target`, sorted."""
    if not target.exists():
        raise UserError(f"{target}: no such file or folder")
    if target.is_file():
        return [target]
    paths = sorted(p for p in target.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                   and p.is_file())
    if not paths:
        raise UserError(f"{target}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths


def load_classifier(model_path: Path, classes_path: Path) -> tuple[keras.Model, list[str]]:
    """The model and the class names of the dataset it was trained on, checked to match."""
    for path, what in ((model_path, "--model"), (classes_path, "--classes")):
        if not path.is_file():
            raise UserError(f"{path}: no such file; run `dvc repro` first or pass {what}")
    model = keras.models.load_model(model_path, compile=False)
    classes = read_json(classes_path)
    if model.output_shape[-1] != len(classes):
        raise UserError(f"{model_path} predicts {model.output_shape[-1]} classes but "
                        f"{classes_path} names {len(classes)}: the model comes from another "
                        "dataset; pass that dataset's classes.json as --classes")
    return model, classes


def temperature(model: keras.Model) -> float | None:
    """The temperature the exported model scales its probabilities by (`evaluate.calibrate`),
    or None when it has none."""
    names = {layer.name: layer for layer in model.layers}
    return 1 / names[temperature_scaling.LAYER].scale if temperature_scaling.LAYER in names \
        else None


def ranked(probs: np.ndarray, classes: list[str], top: int) -> list[Ranked]:
    """The `top` most probable classes of each row of `probs`, best first."""
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return [[(classes[c], float(row[c])) for c in best] for row, best in zip(probs, order)]


def show_example(split: str, class_name: str, out: Path, index: int = 0, top: int = 3,
                 model_path: Path = MODEL, classes_path: Path = CLASSES) -> Ranked:
    """Draw the `index`-th prepared `split` image of `class_name` with the model's top classes
    into `out`; return them."""
    model, classes = load_classifier(model_path, classes_path)
    if class_name not in classes:
        raise UserError(f"class {class_name!r} is not one of {', '.join(classes)}")
    x, y = load_split(PREPARED, split)
    members = np.flatnonzero(y == classes.index(class_name))
    if not 0 <= index < len(members):
        raise UserError(f"index {index} is out of range: {split} has {len(members)} "
                        f"{class_name} images")
    image = np.asarray(x[members[index]])
    best = ranked(model.predict(image[None].astype(np.float32), verbose=0), classes, top)
    charts.predictions([image], [f"{split} / {class_name} #{index}"], best, out)
    return best[0]


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, classify the images and print (or plot) the top classes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", type=Path, metavar="IMAGE_OR_FOLDER")
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--classes", type=Path, default=CLASSES)
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--resize", choices=RESIZE_MODES,
                        help="how non-square images become squares (default: as the training "
                             "data, from dataset.json beside --classes; else crop)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", type=Path, help="write a PNG of the images and predictions")
    parser.add_argument("--engine", choices=ENGINES, default="auto",
                        help="what runs the model (default: OpenVINO for many images on a CPU)")
    args = parser.parse_args(argv)
    if args.top < 1:
        raise UserError(f"--top {args.top} is not allowed: an integer >= 1")
    paths = image_paths(args.target)
    model, classes = load_classifier(args.model, args.classes)
    t = temperature(model)
    print("predict: probabilities " + ("uncalibrated" if t is None else
          f"calibrated (temperature {t:.2f}, fitted on the validation split)"), file=sys.stderr)
    described = args.classes.parent / DATASET.name
    resize = args.resize or (read_json(described)["resize"] if described.exists() else "crop")
    size, best, shown = model.input_shape[1], [], []
    run = engines.runner(model, engines.choose(args.engine, len(paths)))
    for start in range(0, len(paths), CHUNK):
        images = np.stack([decode_image(path, size, resize=resize)
                           for path in paths[start:start + CHUNK]])
        probs = np.concatenate([run(images[i:i + 64].astype(np.float32))
                                for i in range(0, len(images), 64)])
        best += ranked(probs, classes, min(args.top, len(classes)))
        shown += list(images[:PLOTTED - len(shown)])
    if args.json:
        print(json.dumps([{"image": str(path), "predictions": [
            {"class": c, "probability": p} for c, p in top]} for path, top in zip(paths, best)],
            indent=2))
    else:
        width = max(len(str(path)) for path in paths)
        for path, top in zip(paths, best):
            print(f"{str(path):<{width}}  " + "  ".join(f"{c} {p:6.1%}" for c, p in top))
    if args.plot:
        charts.predictions(shown, [path.name for path in paths], best, args.plot)


if __name__ == "__main__":
    run_stage(main)
