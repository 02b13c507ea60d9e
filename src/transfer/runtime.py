"""Plumbing shared by every stage: user errors, seeding, atomic outputs, models and JSON files."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from transfer.startup import STARTED

if TYPE_CHECKING:
    import keras


class UserError(Exception):
    """A problem with the user's input, reported as one line without a traceback."""


class ParamError(UserError):
    """A value in params.yaml that is missing, unknown, of the wrong type or out of range."""


def run_stage(main: Callable[[], None], record: Path | None = None) -> None:
    """Run a stage's `main`, turning a UserError into a one-line message and exit code 2.

    On success, prints the stage's wall time (from the package's import, TensorFlow's start-up
    included) and peak resident memory, and writes both to `record` (a stage's
    `metrics/time/<stage>.json`) when given.
    """
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    seconds = time.perf_counter() - STARTED
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if record is not None:
        write_json(record, {"seconds": round(seconds, 1), "peak_memory_gb": round(peak_gb, 2)})
    print(f"{Path(sys.argv[0]).stem}: {seconds:.1f} s wall, peak memory {peak_gb:.2f} GB",
          file=sys.stderr)


@contextlib.contextmanager
def downloading(what: str, offline: str) -> Iterator[None]:
    """Turn a failed download inside the block into a one-line UserError that names `what`
    and the `offline` way forward.

    Keras's `get_file` raises a bare `Exception("URL fetch failure ...")` with the urllib
    error as its context; any exception with a URLError in its chain counts.
    """
    try:
        yield
    except Exception as e:
        cause: BaseException | None = e
        while cause is not None and not isinstance(cause, urllib.error.URLError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        raise UserError(f"cannot download {what} ({cause.reason}); offline, use {offline}") from e


def require_commit() -> None:
    """Raise UserError in a git repository that has no commit yet (outside git, or without
    git, nothing to check): DVC experiments and DVCLive record runs against a commit, and
    DVCLive stops there with a traceback."""
    try:
        inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"],
                                capture_output=True, text=True)
        head = subprocess.run(["git", "rev-parse", "--verify", "--quiet", "HEAD"],
                              capture_output=True, text=True)
    except FileNotFoundError:
        return
    if inside.stdout.strip() == "true" and head.returncode != 0:
        raise UserError(f"{Path.cwd()} is a git repository with no commit yet; commit the "
                        f"project first (git add -A && git commit -m 'project'): DVC and "
                        f"DVCLive record each run against a commit")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow/Keras from one number."""
    import keras

    keras.utils.set_random_seed(seed)


def device_description() -> str:
    """The GPUs TensorFlow sees, or else the CPU model and the cores this process may use."""
    import tensorflow as tf

    gpus = [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name)
            for gpu in tf.config.list_physical_devices("GPU")]
    if gpus:
        return ", ".join(f"{gpus.count(name)} x {name}" for name in sorted(set(gpus)))
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in
              (cpuinfo.read_text().splitlines() if cpuinfo.exists() else [])
              if line.startswith("model name")]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cpu = f"{models[0] if models else platform.machine()} CPU, {cores} cores, no GPU"
    if Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi"):
        cpu += (" (an NVIDIA GPU is here but TensorFlow has no CUDA libraries: install the "
                "gpu extra, `make venv EXTRAS=dev,gpu`, see docs/speed.md)")
    return cpu


def tensorboard_dir(stage: str) -> Path:
    """An empty directory for this run's TensorBoard logs of `stage`: `logs/<run>/<stage>`.

    `<run>` is the experiment's name under `dvc exp run`, else `workspace`. The root is the
    main repository (DVC sets `DVC_ROOT` to it even for queued experiments, which run in
    temporary copies), so one `tensorboard --logdir logs` compares every run. These logs are a
    view across runs, not an output DVC versions: DVCLive's files are.
    """
    path = Path(os.environ.get("DVC_ROOT", ".")) / "logs" / os.environ.get(
        "DVC_EXP_NAME", "workspace") / stage
    shutil.rmtree(path, ignore_errors=True)  # a rerun replaces its run's curves
    return path


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `target` (file or directory) and move it into place on success.

    The temporary name keeps the target's suffixes, so writers that choose a format by them
    (Keras: `.keras`, `.h5`, `.weights.h5`) still work. On any error the temporary is removed
    and the target is left as it was: a killed or failed stage never leaves a half-written
    output behind (nor a parent folder it created), and what a `kill -9` leaves in a
    temporary is removed by the next run.
    """
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


def write_json(path: str | Path, data: object, sort_keys: bool = True) -> None:
    """Write `data` as stable, indented JSON, atomically (keys sorted, or in `data`'s order)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def read_json(path: str | Path) -> object:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())
