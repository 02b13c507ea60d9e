"""Stage `fetch`: read the dataset, take a stratified share, split off validation, save uint8.

Writes `data/prepared/{train,val,test}_{x,y}.npy` and `classes.json`. The test set is only
ever read by `evaluate`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from transfer.data import (
    CIFAR10_CLASSES,
    decode_image,
    find_root,
    opened_folder,
    scan_folder,
    stratified_split,
    stratified_subset,
    to_rgb_array,
    without_corrupt,
    write_images,
)
from transfer.params import DataParams, load_params
from transfer.runtime import UserError, atomic_path, downloading, run_stage, write_json

OUT = Path("data/prepared")
SKIP_HINT = "; set data.skip_corrupt: true to skip such files"


def write_split(out: Path, split: str, labels: np.ndarray, size: int, load) -> None:
    """Write one split's images (decoded by `load(i)`) and labels into `out`."""
    if not len(labels):
        raise UserError(f"the {split} split is empty: raise data.fraction or data.val_split "
                        "(every class needs at least 2 training images for a validation split)")
    write_images(out / f"{split}_x.npy", len(labels), size, load)
    np.save(out / f"{split}_y.npy", labels.astype(np.int64))


def fetch_cifar10(p: DataParams, seed: int, out: Path) -> list[str]:
    """Download CIFAR-10 through keras.datasets and write the splits."""
    import keras
    from PIL import Image

    with downloading("CIFAR-10 through keras.datasets",
                     "data.source=folder with data.path set to a folder or archive of "
                     "train/<class>/ and test/<class>/ images"):
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    y_train, y_test = y_train.reshape(-1), y_test.reshape(-1)
    rng = np.random.default_rng(seed)
    pool = stratified_subset(y_train, p.fraction, rng)
    train, val = stratified_split(y_train[pool], p.val_split, rng)
    for split, x, idx, y in (("train", x_train, pool[train], y_train),
                             ("val", x_train, pool[val], y_train),
                             ("test", x_test, np.arange(len(y_test)), y_test)):
        write_split(out, split, y[idx], p.image_size,
                    lambda i, x=x, idx=idx: to_rgb_array(Image.fromarray(x[idx[i]]),
                                                         p.image_size))
    return list(CIFAR10_CLASSES)


def fetch_folder(p: DataParams, seed: int, out: Path) -> list[str]:
    """Read `train/<class>/` and `test/<class>/` image folders (or an archive of them)."""
    with opened_folder(p.path) as top:
        dataset = scan_folder(find_root(top))
        if dataset.ignored:
            print(f"fetch: ignored {dataset.ignored} non-image file(s) in {p.path}")
        if p.skip_corrupt:
            dataset, dropped = without_corrupt(dataset, p.image_size)
            if dropped:
                print(f"fetch: skipped {len(dropped)} corrupt image(s) (data.skip_corrupt), "
                      f"the first: {dropped[0]}")
        rng = np.random.default_rng(seed)
        labels = dataset.train.labels
        pool = stratified_subset(labels, p.fraction, rng)
        train, val = stratified_split(labels[pool], p.val_split, rng)
        for split, source, idx in (("train", dataset.train, pool[train]),
                                   ("val", dataset.train, pool[val]),
                                   ("test", dataset.test, np.arange(len(dataset.test.labels)))):
            paths = [source.paths[i] for i in idx]
            write_split(out, split, source.labels[idx], p.image_size,
                        lambda i, paths=paths: decode_image(paths[i], p.image_size, SKIP_HINT))
    return dataset.classes


def main() -> None:
    """Fetch the dataset named by `data` in params.yaml into data/prepared/."""
    params = load_params()
    p = params.data
    with atomic_path(OUT) as tmp:
        tmp.mkdir()
        fetch = fetch_cifar10 if p.source == "cifar10" else fetch_folder
        classes = fetch(p, params.seed, tmp)
        write_json(tmp / "classes.json", classes)
        counts = {s: int(len(np.load(tmp / f"{s}_y.npy"))) for s in ("train", "val", "test")}
    print(f"fetch: {len(classes)} classes, {counts} images of {p.image_size}px -> {OUT}",
          file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
