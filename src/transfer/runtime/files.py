"""Outputs written atomically (temp file + rename) and JSON records."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target` (file or folder, same suffixes, as Keras picks its
    format by them), moved into place on success; on an error `target` is left as it was, with
    no parent folder created for it, and a `kill -9`'s leftover is removed by the next run."""
    target = Path(target)
    created = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes)  # all of them: Keras wants `.weights.h5`, not `.h5`
    stem = target.name.removesuffix(suffix)
    for stale in target.parent.glob(f".{stem}.*.tmp{suffix}"):  # left by a killed run
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}",
                                    dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()
        if created and not target.exists():
            with contextlib.suppress(OSError):  # not empty: other outputs are there
                target.parent.rmdir()


def write_json(path: str | Path, data: object, sort_keys: bool = True) -> None:
    """Write `data` as stable, indented JSON, atomically (keys sorted, or in `data`'s order)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def read_json(path: str | Path) -> object:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())
