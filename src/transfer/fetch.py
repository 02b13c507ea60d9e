"""Stage `fetch`: read the dataset, take a stratified share, split off validation, save uint8.

Writes `data/prepared/{train,val,test}_{x,y}.npy`, `classes.json`, and `dataset.json` (the
layout found, what served as the test set, the stored image size and how images were made
square). The test set is only ever read by `evaluate`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from transfer.data import cifar10
from transfer.data.arrays import write_images
from transfer.data.folders import (
    check_class_sizes,
    find_layout,
    opened_folder,
    scan_folder,
    split_off_test,
)
from transfer.data.images import decode_image, median_side, to_rgb_array, without_corrupt
from transfer.data.splits import stratified_split, stratified_subset, top_up
from transfer.params.catalogue import native_size
from transfer.params.data import DataParams, FetchStageParams
from transfer.params.fields import load_params
from transfer.params.model import ModelParams
from transfer.params.resolved import write_resolved
from transfer.runtime.commits import require_commit
from transfer.runtime.downloads import downloading
from transfer.runtime.errors import UserError
from transfer.runtime.files import atomic_path, write_json
from transfer.runtime.paths import CLASSES, DATASET, PREPARED, STAGE_TIMES
from transfer.runtime.stage import run_stage
from transfer.training import recipe

SKIP_HINT = "; set data.skip_corrupt: true to skip such files"


def write_split(out: Path, split: str, labels: np.ndarray, size: int, load) -> None:
    """Write one split's images (decoded by `load(i)`) and labels into `out`."""
    if not len(labels):
        raise UserError(f"the {split} split is empty: raise data.fraction or data.val_split "
                        "(every class needs at least 2 training images for a validation split)")
    write_images(out / f"{split}_x.npy", len(labels), size, load)
    np.save(out / f"{split}_y.npy", labels.astype(np.int64))


def sizes(p: DataParams, m: ModelParams, side: int | None) -> tuple[int, int]:
    """The model's input size (`model.input_size`, or the recipe's for images of median
    shorter side `side`) and the size to store images at: that, or `side` if smaller (nothing
    is upscaled before the model), unless `data.image_size` says."""
    input_size = (recipe.input_size(native_size(m.backbone), side) if m.input_size == "auto"
                  else m.input_size)
    return input_size, p.image_size or min(input_size, side or input_size)


def training_split(labels: np.ndarray, p: DataParams,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, bool]:
    """Positions of the training and validation images among `labels`: a stratified
    `data.fraction`, `data.val_split` of it for validation, topped up to `data.val_min` per
    class (`data.top_up`); and whether it was topped up."""
    pool = stratified_subset(labels, p.fraction, rng)
    train, val = stratified_split(labels[pool], p.val_split, rng)
    if not p.val_min:
        return pool[train], pool[val], False
    unused = np.setdiff1d(np.arange(len(labels)), pool)
    topped_train, topped_val = top_up(labels, pool[train], pool[val], unused, p.val_min, rng)
    return topped_train, topped_val, len(topped_val) > len(val)


def fetch_cifar10(p: DataParams, m: ModelParams, seed: int,
                  out: Path) -> tuple[list[str], dict, int]:
    """Download CIFAR-10 through keras.datasets and write the splits (stored at 32 px unless
    data.image_size says otherwise); the class names, a description of the data and the model's
    input size."""
    import keras
    from PIL import Image

    with downloading("CIFAR-10 through keras.datasets",
                     "data.source=folder with data.path set to a folder or archive of "
                     "train/<class>/ and test/<class>/ images"):
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    y_train, y_test = y_train.reshape(-1), y_test.reshape(-1)
    input_size, size = sizes(p, m, x_train.shape[1])
    train, val, topped_up = training_split(y_train, p, np.random.default_rng(seed))
    for split, x, idx, y in (("train", x_train, train, y_train),
                             ("val", x_train, val, y_train),
                             ("test", x_test, np.arange(len(y_test)), y_test)):
        write_split(out, split, y[idx], size,
                    lambda i, x=x, idx=idx: to_rgb_array(Image.fromarray(x[idx[i]]), size))
    return list(cifar10.CLASSES), {"layout": "keras.datasets.cifar10",
                                   "test_set": "CIFAR-10's own test set", "image_size": size,
                                   "median_side": x_train.shape[1], "resize": p.resize,
                                   "val_topped_up": topped_up}, input_size


def fetch_folder(p: DataParams, m: ModelParams, seed: int,
                 out: Path) -> tuple[list[str], dict, int]:
    """Read an image-folder dataset (a folder or an archive; see `data.find_layout`) and write
    the splits; the class names, a description of the data and the model's input size."""
    with opened_folder(p.path) as top:
        layout = find_layout(top, p.test_folder)
        dataset = scan_folder(layout)
        if dataset.ignored:
            print(f"fetch: ignored {dataset.ignored} file(s) in {p.path} that are not images or "
                  f"are hidden (._*, .DS_Store, __MACOSX/, hidden folders)")
        side = median_side(dataset.train.paths)
        input_size, size = sizes(p, m, side)
        if p.skip_corrupt:
            dataset, dropped = without_corrupt(dataset, size)
            if dropped:
                print(f"fetch: skipped {len(dropped)} corrupt image(s) (data.skip_corrupt), "
                      f"the first: {p.path}/{dropped[0].relative_to(top)}")
        rng = np.random.default_rng(seed)
        if dataset.test is None:
            check_class_sizes(dataset, 3, f"data.test_split={p.test_split} and "
                                          f"data.val_split={p.val_split}")
            dataset = split_off_test(dataset, p.test_split, rng)
        else:
            check_class_sizes(dataset, 2, f"data.val_split={p.val_split}")
        inside = "" if layout.root == top else f" in {layout.root.relative_to(top)}/"
        print(f"fetch: found {layout.describe()}{inside} of {p.path}")
        train, val, topped_up = training_split(dataset.train.labels, p, rng)
        for split, source, idx in (("train", dataset.train, train),
                                   ("val", dataset.train, val),
                                   ("test", dataset.test, np.arange(len(dataset.test.labels)))):
            paths = [source.paths[i] for i in idx]
            write_split(out, split, source.labels[idx], size,
                        lambda i, paths=paths: decode_image(paths[i], size, SKIP_HINT, p.resize))
    test_set = (f"the {layout.test.name}/ folder" if layout.test is not None
                else f"a stratified {p.test_split:.0%} of the images")
    return dataset.classes, {"layout": layout.describe(), "test_set": test_set,
                             "image_size": size, "median_side": side, "resize": p.resize,
                             "val_topped_up": topped_up}, input_size


def main() -> None:
    """Fetch the dataset named by `data` in params.yaml into data/prepared/."""
    require_commit()  # before minutes of work that `train` could not record
    params = load_params(FetchStageParams)
    p = params.data
    with atomic_path(PREPARED) as tmp:
        tmp.mkdir()
        if p.source == "cifar10":
            classes, description, input_size = fetch_cifar10(p, params.model, params.seed, tmp)
        else:
            classes, description, input_size = fetch_folder(p, params.model, params.seed, tmp)
        description.update(native_size=native_size(params.model.backbone),  # for the paper
                           thumbnail_scale=recipe.THUMBNAIL_SCALE)
        write_json(tmp / CLASSES.name, classes)
        write_json(tmp / DATASET.name, description)
        counts = {s: int(len(np.load(tmp / f"{s}_y.npy"))) for s in ("train", "val", "test")}
    write_resolved("fetch", {"model": params.model.model_copy(update={"input_size": input_size})})
    d = description
    print(f"fetch: {len(classes)} classes, {counts} images of {d['image_size']}px ({d['resize']}) "
          f"for a {input_size}px model, test set: {d['test_set']} -> {PREPARED}",
          file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, STAGE_TIMES / "fetch.json")
