"""Image-folder datasets: archives opened, layouts found, class folders scanned, test split off."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transfer.data.splits import stratified_split
from transfer.params.fields import HELD_OUT
from transfer.runtime.errors import UserError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
MACOS_FORKS = "__MACOSX"  # the folder of AppleDouble files (._name) that macOS's zip adds


def hidden(path: Path) -> bool:
    """True for what file managers hide or macOS adds: names starting with `.` (.DS_Store,
    the AppleDouble `._IMG_0001.jpg` beside each photo copied from a Mac) and `__MACOSX/`."""
    return path.name.startswith(".") or path.name == MACOS_FORKS


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
    top: Path  # the folder the dataset was found in (data.path, or the archive unpacked)

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
    until split off train), how many other files its folder holds, and its layout."""

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
    return any(_is_image(p) for d in _class_dirs(folder).values() for p in d.iterdir())


def _is_image(path: Path) -> bool:
    """True for a visible file with an image suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not hidden(path) and path.is_file()


def find_layout(top: Path, test_folder: str = "") -> Layout:
    """Find the dataset in `top` (itself or one folder down): `train/` beside a held-out
    folder (`test/`, `val/`, `valid/` or `validation/`; `test_folder` picks one when there are
    several), `train/` alone, or one folder of class folders."""
    candidates = [top] + sorted(p for p in top.iterdir() if p.is_dir() and not hidden(p))
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
        return Layout(candidate, candidate / "train", candidate / held[0] if held else None, top)
    for candidate in candidates:
        if _holds_class_folders(candidate):
            if candidate != top and candidate.name in HELD_OUT:
                raise DataError(f"{candidate}: only a held-out split ({candidate.name}/) is "
                                f"there, no train/; to train on it, set data.path to {candidate}")
            return Layout(candidate, candidate, None, top)
    raise DataError(f"{top}: no image folders found (expected train/<class>/ beside test/ or "
                    "val/, or one folder of <class>/ folders, at the top or one folder down)")


def _class_dirs(split_dir: Path) -> dict[str, Path]:
    """Map class name to folder for every visible sub-folder of a split."""
    return {p.name: p for p in split_dir.iterdir() if p.is_dir() and not hidden(p)}


def _scan_split(folder: Path, classes: list[str]) -> FolderSplit:
    """The images of `folder/<class>/` for every class."""
    paths, labels = [], []
    for label, name in enumerate(classes):
        images = sorted(p for p in (folder / name).iterdir() if _is_image(p))
        if not images:
            raise DataError(f"{folder / name}: class folder has no images "
                            f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        paths += images
        labels += [label] * len(images)
    return FolderSplit(paths, np.asarray(labels, dtype=np.int64))


def _file_count(folder: Path) -> int:
    """The files under `folder`, at any depth."""
    return sum(len(files) for _, _, files in os.walk(folder))


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
    train = _scan_split(layout.train, classes)
    test = None if layout.test is None else _scan_split(layout.test, classes)
    images = len(train.paths) + (0 if test is None else len(test.paths))
    return FolderDataset(classes, train, test, _file_count(layout.top) - images, layout)


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
