"""Decoding image files to square RGB uint8 arrays: sizes, EXIF orientation, corrupt files."""

from __future__ import annotations

import dataclasses
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from transfer.data.folders import DataError, FolderDataset, FolderSplit


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
