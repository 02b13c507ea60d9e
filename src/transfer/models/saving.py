"""Saving models atomically, as the same bytes for the same model (so DVC reruns nothing)."""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from transfer.runtime.files import atomic_path

if TYPE_CHECKING:
    import keras

class _Dropping(logging.Filter):
    """Drops log records whose message contains a given text."""

    def __init__(self, text: str) -> None:
        """Drop records containing `text`."""
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        """False for the dropped records."""
        return self.text not in record.getMessage()


def save_model(model: keras.Model, target: str | Path) -> None:
    """Save `model` atomically; a `.keras` file is then pinned (see `pin_keras_archive`).

    The assignment asks for an HDF5 file (`cifar10.h5`), and Keras warns on every HDF5 save
    that the format is legacy: that one warning is dropped, as the format is chosen knowingly.
    """
    legacy = _Dropping("This file format is considered legacy")
    absl = logging.getLogger("absl")
    with atomic_path(target) as tmp:
        absl.addFilter(legacy)
        try:
            model.save(tmp)
        finally:
            absl.removeFilter(legacy)
        if tmp.suffix == ".keras":
            pin_keras_archive(tmp)


def pin_keras_archive(path: str | Path) -> None:
    """Rewrite a `.keras` file so that the same model always gives the same bytes.

    Keras stamps the save time in `metadata.json` and on the weights' zip entry, and numbers
    the objects layers share (dtype policies) in `config.json` by their memory address; left
    there, a stage that reruns with identical results would still change its output's hash and
    make DVC rerun every stage after it. The stamps go, the numbers become 1, 2, ... in order
    of first use. Entries are streamed, so memory stays bounded.
    """
    with (atomic_path(path) as tmp, zipfile.ZipFile(path) as source,
          zipfile.ZipFile(tmp, "w") as pinned):
        for entry in source.infolist():
            info = zipfile.ZipInfo(entry.filename)  # dated 1980-01-01 00:00
            info.compress_type, info.external_attr = entry.compress_type, entry.external_attr
            if entry.filename == "metadata.json":
                metadata = json.loads(source.read(entry))
                metadata.pop("date_saved", None)
                pinned.writestr(info, json.dumps(metadata))
            elif entry.filename == "config.json":
                config = renumber_shared_objects(json.loads(source.read(entry)), {})
                pinned.writestr(info, json.dumps(config))
            else:
                with (source.open(entry) as src,
                      pinned.open(info, "w", force_zip64=entry.file_size >= zipfile.ZIP64_LIMIT)
                      as dst):
                    shutil.copyfileobj(src, dst, 2**20)


def renumber_shared_objects(config: object, numbers: dict[int, int]) -> object:
    """`config` with each `shared_object_id` replaced by its order of first use in `numbers`."""
    if isinstance(config, list):
        return [renumber_shared_objects(item, numbers) for item in config]
    if not isinstance(config, dict):
        return config
    return {key: numbers.setdefault(value, len(numbers) + 1) if key == "shared_object_id"
            else renumber_shared_objects(value, numbers) for key, value in config.items()}
