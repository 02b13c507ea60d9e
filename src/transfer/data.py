"""Datasets: image-folder discovery and decoding, stratified splits, and on-disk uint8 arrays."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from transfer.runtime import UserError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
SPLITS = ("train", "val", "test")


class DataError(UserError):
    """A dataset that cannot be read as `train/<class>/` and `test/<class>/` image folders."""


@dataclass(frozen=True)
class FolderSplit:
    """The image files of one split of an image-folder dataset, with integer labels."""

    paths: list[Path]
    labels: np.ndarray


@dataclass(frozen=True)
class FolderDataset:
    """An image-folder dataset: sorted class names, its train and test splits, skipped files."""

    classes: list[str]
    train: FolderSplit
    test: FolderSplit
    ignored: int


@contextlib.contextmanager
def opened_folder(path: str | Path) -> Iterator[Path]:
    """Yield the dataset directory: `path` itself, or an archive unpacked to a temp dir."""
    path = Path(path)
    if path.is_dir():
        yield path
        return
    if not path.name.lower().endswith(ARCHIVE_SUFFIXES):
        raise DataError(f"{path}: not a directory or an archive ({', '.join(ARCHIVE_SUFFIXES)})")
    with tempfile.TemporaryDirectory(prefix="transfer-unpack-") as tmp:
        # Tar members are sanitised by the "data" filter; zipfile sanitises names itself and
        # takes no filter argument.
        safety = {} if path.name.lower().endswith(".zip") else {"filter": "data"}
        try:
            shutil.unpack_archive(path, tmp, **safety)
        except (shutil.ReadError, OSError, EOFError) as e:
            raise DataError(f"{path}: cannot unpack archive ({e})") from e
        yield Path(tmp)


def find_root(top: Path) -> Path:
    """Return the directory under `top` (itself or one level down) holding `train/` and `test/`."""
    candidates = [top] + sorted(p for p in top.iterdir() if p.is_dir())
    for candidate in candidates:
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    raise DataError(f"{top}: no 'train/' and 'test/' folders (expected train/<class>/*.jpg "
                    "and test/<class>/*.jpg, at the top or one folder down)")


def _class_dirs(split_dir: Path) -> dict[str, Path]:
    """Map class name to folder for every visible sub-folder of a split."""
    return {p.name: p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}


def scan_folder(root: Path) -> FolderDataset:
    """List the images of `root/train/<class>/` and `root/test/<class>/`, checking the classes."""
    train_dirs, test_dirs = _class_dirs(root / "train"), _class_dirs(root / "test")
    if set(train_dirs) != set(test_dirs):
        only_train = sorted(set(train_dirs) - set(test_dirs))
        only_test = sorted(set(test_dirs) - set(train_dirs))
        raise DataError(f"{root}: train and test classes differ (only in train: {only_train}, "
                        f"only in test: {only_test})")
    classes = sorted(train_dirs)
    if len(classes) < 2:
        raise DataError(f"{root / 'train'}: found {len(classes)} class folder(s), need at least 2")
    ignored = 0
    splits = {}
    for split, dirs in (("train", train_dirs), ("test", test_dirs)):
        paths, labels = [], []
        for label, name in enumerate(classes):
            files = sorted(p for p in dirs[name].iterdir() if p.is_file())
            images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            ignored += len(files) - len(images)
            if not images:
                raise DataError(f"{dirs[name]}: class folder has no images "
                                f"({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths += images
            labels += [label] * len(images)
        splits[split] = FolderSplit(paths, np.asarray(labels, dtype=np.int64))
    return FolderDataset(classes, splits["train"], splits["test"], ignored)


def to_rgb_array(image: Image.Image, size: int) -> np.ndarray:
    """Convert any PIL image (grayscale, RGBA, palette...) to RGB uint8 of size x size."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grayscale: keep the top 8 bits
        image = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8))
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def decode_image(path: Path, size: int, hint: str = "") -> np.ndarray:
    """Decode one image file to RGB uint8 (size, size, 3); a corrupt file raises DataError
    (its message ends with `hint`)."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))
            return to_rgb_array(image, size)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{path}: cannot decode image ({e}){hint}") from e


def without_corrupt(dataset: FolderDataset, size: int,
                    workers: int = 4) -> tuple[FolderDataset, list[Path]]:
    """`dataset` without the images that fail to decode (each is decoded once to find out),
    and the paths left out. A class left without images is a DataError."""
    def decodes(path: Path) -> bool:
        try:
            decode_image(path, size)
        except DataError:
            return False
        return True

    kept, dropped = {}, []
    for name in ("train", "test"):
        split = getattr(dataset, name)
        with ThreadPoolExecutor(workers) as pool:
            good = np.fromiter(pool.map(decodes, split.paths), bool, len(split.paths))
        dropped += [path for path, ok in zip(split.paths, good) if not ok]
        kept[name] = FolderSplit([path for path, ok in zip(split.paths, good) if ok],
                                 split.labels[good])
        empty = sorted(set(range(len(dataset.classes))) - set(kept[name].labels.tolist()))
        if empty:
            raise DataError(f"{name}/{dataset.classes[empty[0]]}: no image in this class folder "
                            "decodes")
    return dataclasses.replace(dataset, **kept), dropped


def stratified_subset(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a seeded share `fraction` of each class (at least one per class)."""
    keep = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        keep.append(members[: max(1, round(len(members) * fraction))])
    return np.sort(np.concatenate(keep))


def stratified_split(labels: np.ndarray, val_split: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split positions 0..n-1 into sorted (train, val), taking `val_split` of every class for val.

    Each class keeps at least one training example; a class of one example has none in val.
    """
    train, val = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val = min(max(1, round(len(members) * val_split)), len(members) - 1)
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def write_images(path: Path, count: int, size: int,
                 load: Callable[[int], np.ndarray], workers: int = 4) -> None:
    """Write `load(i)` for i in 0..count-1 into a uint8 .npy of shape (count, size, size, 3).

    Images are decoded by a thread pool and streamed into a memory-mapped file, so memory stays
    bounded by a few images whatever the dataset size.
    """
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, size, size, 3))
    with ThreadPoolExecutor(workers) as pool:
        for i, image in enumerate(pool.map(load, range(count))):
            out[i] = image
    out.flush()
    del out


def load_split(directory: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map the images of one split written by `fetch`, with their labels."""
    directory = Path(directory)
    return (np.load(directory / f"{split}_x.npy", mmap_mode="r"),
            np.load(directory / f"{split}_y.npy"))


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """One-hot encode integer labels as float32."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels).reshape(-1)]


def preprocess_data(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prepare CIFAR-10 arrays for the saved model: X (m, 32, 32, 3) in 0-255, Y (m,) labels.

    Returns X_p as float32 pixels (the model resizes and normalises inside itself, so nothing is
    upscaled in memory) and Y_p one-hot over the 10 classes.
    """
    X = np.asarray(X)
    if X.ndim != 4 or X.shape[-1] != 3:
        raise ValueError(f"X must have shape (m, height, width, 3), got {X.shape}")
    Y = np.asarray(Y).reshape(-1)
    if len(Y) != len(X):
        raise ValueError(f"X has {len(X)} images but Y has {len(Y)} labels")
    return X.astype(np.float32), one_hot(Y, len(CIFAR10_CLASSES))
