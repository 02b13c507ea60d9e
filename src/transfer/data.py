"""Datasets: image-folder discovery and decoding, stratified splits, and on-disk uint8 arrays."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tarfile
import tempfile
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from transfer.params import HELD_OUT
from transfer.runtime import UserError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
SPLITS = ("train", "val", "test")


class DataError(UserError):
    """A dataset that cannot be read as image folders."""


@dataclass(frozen=True)
class FolderSplit:
    """The image files of one split of an image-folder dataset, with integer labels."""

    paths: list[Path]
    labels: np.ndarray


@dataclass(frozen=True)
class Layout:
    """Where an image-folder dataset's splits are: the folder of training class folders, and
    the held-out one that plays the test set (None: the test set is split off `train`)."""

    root: Path
    train: Path
    test: Path | None

    def describe(self) -> str:
        """The layout in words, as `fetch` prints it and the paper says it."""
        if self.test is None:
            where = "train/" if self.train != self.root else "one folder of class folders"
            return (f"{where}, with no held-out folder: the test set is a stratified share of "
                    "the images (data.test_split)")
        return (f"train/ + {self.test.name}/: {self.test.name}/ is the test set, the validation "
                "set is split off train/")


@dataclass(frozen=True)
class FolderDataset:
    """An image-folder dataset: sorted class names, its train and test splits (test is None
    until split off train), skipped files, and its layout."""

    classes: list[str]
    train: FolderSplit
    test: FolderSplit | None
    ignored: int
    layout: Layout


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
        except tarfile.FilterError as e:  # a member aimed outside the folder, or a link out
            raise DataError(f"{path}: unsafe archive member refused ({e}); an archive may "
                            f"hold only files and links inside its own folder") from e
        except (shutil.ReadError, OSError, EOFError) as e:
            raise DataError(f"{path}: cannot unpack archive ({e})") from e
        try:
            yield Path(tmp)
        except DataError as e:  # name the user's archive, not the temporary folder
            raise DataError(str(e).replace(tmp, str(path))) from e


def _holds_class_folders(folder: Path) -> bool:
    """True if some visible sub-folder of `folder` holds an image file directly."""
    return any(p.suffix.lower() in IMAGE_SUFFIXES for d in _class_dirs(folder).values()
               for p in d.iterdir())


def find_layout(top: Path, test_folder: str = "") -> Layout:
    """Find the dataset in `top` (itself or one folder down): `train/` beside a held-out
    folder (`test/`, `val/`, `valid/` or `validation/`; `test_folder` picks one when there are
    several), `train/` alone, or one folder of class folders."""
    candidates = [top] + sorted(p for p in top.iterdir() if p.is_dir())
    for candidate in candidates:
        if not (candidate / "train").is_dir():
            continue
        held = [name for name in HELD_OUT if (candidate / name).is_dir()]
        if test_folder:
            if test_folder not in held:
                raise DataError(f"{candidate}: no '{test_folder}/' folder (data.test_folder) "
                                f"beside train/; found: {', '.join(held) or 'none'}")
            held = [test_folder]
        if len(held) > 1:
            raise DataError(f"{candidate}: both {held[0]}/ and {held[1]}/ could be the test set; "
                            f"set data.test_folder to one of: {', '.join(held)}")
        return Layout(candidate, candidate / "train", candidate / held[0] if held else None)
    for candidate in candidates:
        if _holds_class_folders(candidate):
            if candidate != top and candidate.name in HELD_OUT:
                raise DataError(f"{candidate}: only a held-out split ({candidate.name}/) is "
                                f"there, no train/; to train on it, set data.path to {candidate}")
            return Layout(candidate, candidate, None)
    raise DataError(f"{top}: no image folders found (expected train/<class>/ beside test/ or "
                    "val/, or one folder of <class>/ folders, at the top or one folder down)")


def _class_dirs(split_dir: Path) -> dict[str, Path]:
    """Map class name to folder for every visible sub-folder of a split."""
    return {p.name: p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")}


def _scan_split(folder: Path, classes: list[str]) -> tuple[FolderSplit, int]:
    """The images of `folder/<class>/` for every class, and how many other files were there."""
    paths, labels, ignored = [], [], 0
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir() if p.is_file())
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        ignored += len(files) - len(images)
        if not images:
            raise DataError(f"{folder / name}: class folder has no images "
                            f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        paths += images
        labels += [label] * len(images)
    return FolderSplit(paths, np.asarray(labels, dtype=np.int64)), ignored


def scan_folder(layout: Layout) -> FolderDataset:
    """List the images of the layout's class folders, checking that the splits' classes agree."""
    classes = sorted(_class_dirs(layout.train))
    if layout.test is not None:
        test_classes = sorted(_class_dirs(layout.test))
        if classes != test_classes:
            only_train = sorted(set(classes) - set(test_classes))
            only_test = sorted(set(test_classes) - set(classes))
            raise DataError(f"{layout.root}: train and {layout.test.name} classes differ (only "
                            f"in train: {only_train}, only in {layout.test.name}: {only_test})")
    if len(classes) < 2:
        raise DataError(f"{layout.train}: found {len(classes)} class folder(s), need at least 2")
    train, ignored = _scan_split(layout.train, classes)
    test, ignored_test = (None, 0) if layout.test is None else _scan_split(layout.test, classes)
    return FolderDataset(classes, train, test, ignored + ignored_test, layout)


def split_off_test(dataset: FolderDataset, test_split: float,
                   rng: np.random.Generator) -> FolderDataset:
    """`dataset` with a stratified share `test_split` of its training images as the test set."""
    train, test = stratified_split(dataset.train.labels, test_split, rng)
    return dataclasses.replace(dataset, **{
        name: FolderSplit([dataset.train.paths[i] for i in idx], dataset.train.labels[idx])
        for name, idx in (("train", train), ("test", test))})


def check_class_sizes(dataset: FolderDataset, need: int, why: str) -> None:
    """Raise a DataError naming the first class with fewer than `need` training images."""
    counts = np.bincount(dataset.train.labels, minlength=len(dataset.classes))
    for name, count in zip(dataset.classes, counts):
        if count < need:
            raise DataError(f"{dataset.layout.train / name}: {count} image(s), too few for "
                            f"{why} (need at least {need})")


def median_side(paths: list[Path], sample: int = 500) -> int | None:
    """The median shorter side of (an even sample of) the images; None if none decodes."""
    step = max(1, len(paths) // sample)
    sides = []
    for path in paths[::step]:
        try:
            with Image.open(path) as image:
                sides.append(min(image.size))
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # decoding reports it, or skips it with data.skip_corrupt
    return int(np.median(sides)) if sides else None


def to_rgb_array(image: Image.Image, size: int, resize: str = "crop") -> np.ndarray:
    """Convert any PIL image (grayscale, RGBA, palette...) to RGB uint8 of size x size: the
    centred square of its shorter side (`resize="crop"`) or all of it (`"squash"`), resized."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grayscale: keep the top 8 bits
        image = Image.fromarray((np.asarray(image, dtype=np.uint32) >> 8).astype(np.uint8))
    image = image.convert("RGB")
    if resize == "crop" and image.width != image.height:
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        image = image.crop((left, top, left + side, top + side))
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def decode_image(path: Path, size: int, hint: str = "", resize: str = "crop") -> np.ndarray:
    """Decode one image file, upright by its EXIF orientation, to RGB uint8 (size, size, 3) as
    `to_rgb_array` does; a corrupt file raises DataError (its message ends with `hint`)."""
    try:
        with warnings.catch_warnings():
            # A photo's EXIF block may be cut short (Food-101 has such files); only its
            # orientation is used here, the pixels are intact, so PIL's note on it is dropped.
            warnings.filterwarnings("ignore", "Tag data larger than file", UserWarning)
            with Image.open(path) as image:
                image.draft("RGB", (size, size))
                return to_rgb_array(ImageOps.exif_transpose(image), size, resize)
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
        if split is None:  # not split off train yet
            continue
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


def top_up(labels: np.ndarray, train: np.ndarray, val: np.ndarray, unused: np.ndarray,
           minimum: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) positions with at least `minimum` validation images per class where
    the data allows: first from `unused` (images outside `data.fraction`), then moved from
    `train` as long as half of the class's training images stay."""
    moved = []
    for c in np.unique(labels):
        need = minimum - int(np.sum(labels[val] == c))
        if need <= 0:
            continue
        spare = rng.permutation(unused[labels[unused] == c])[:need]
        own = train[labels[train] == c]
        moved.append(np.concatenate([spare, rng.permutation(own)[:min(need - len(spare),
                                                                         len(own) // 2)]]))
    if not moved:
        return train, val
    moved = np.concatenate(moved).astype(np.int64)
    return np.setdiff1d(train, moved), np.union1d(val, moved)


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
