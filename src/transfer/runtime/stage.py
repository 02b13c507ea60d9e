"""How every stage runs: its inputs checked, one-line errors, its wall time and memory
recorded, the memory allocator it runs with named, seeding."""

from __future__ import annotations

import platform
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from transfer.runtime.errors import UserError
from transfer.runtime.files import write_json
from transfer.runtime.startup import STARTED

PIPELINE = Path("dvc.yaml")
MAPS = Path("/proc/self/maps")
ALLOCATORS = {"libmimalloc": "mimalloc", "libtcmalloc": "tcmalloc", "libjemalloc": "jemalloc"}


def allocator(maps: Path = MAPS) -> str:
    """The malloc this process runs with: a preloaded mimalloc, tcmalloc or jemalloc (found
    among its mapped libraries, see `bin/python`), else the C library's own."""
    text = maps.read_text() if maps.exists() else ""
    for library, name in ALLOCATORS.items():
        if f"/{library}" in text:
            return name
    return "glibc malloc" if platform.system() == "Linux" else "the system's malloc"


def outputs(entry: dict) -> list[Path]:
    """The paths a dvc.yaml stage writes: its outs and metrics (a path or {path: options})."""
    return [Path(next(iter(out)) if isinstance(out, dict) else out)
            for key in ("outs", "metrics") for out in entry.get(key, [])]


def missing_input(stage: str, pipeline: Path = PIPELINE) -> str | None:
    """Why `stage` of `pipeline` cannot run yet: the first of its deps that another stage
    writes and that is not there, and that stage (None when all are there, or when `stage` is
    not in the pipeline)."""
    stages = yaml.safe_load(pipeline.read_text()).get("stages", {}) if pipeline.is_file() else {}
    for dep in map(Path, stages.get(stage, {}).get("deps", [])):
        for writer, entry in stages.items():
            for out in outputs(entry):
                needed = out if dep in out.parents else dep  # a folder several stages write into
                if writer != stage and (needed == out or out in dep.parents) and \
                        not needed.exists():
                    return (f"{needed} is missing, which stage '{writer}' writes: run "
                            f"`dvc repro {stage}` (it runs '{writer}' first)")
    return None


def run_stage(main: Callable[[], None], record: Path | None = None) -> None:
    """Run a stage's `main` (a stage of dvc.yaml only once the inputs other stages write are
    there), a UserError as one line and exit code 2; on success print its wall time (from the
    package's import), peak memory and allocator, the first two also into `record` when
    given."""
    try:
        if reason := missing_input(Path(sys.argv[0]).stem):
            raise UserError(reason)
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    seconds = time.perf_counter() - STARTED
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if record is not None:
        write_json(record, {"seconds": round(seconds, 1), "peak_memory_gb": round(peak_gb, 2)})
    print(f"{Path(sys.argv[0]).stem}: {seconds:.1f} s wall, peak memory {peak_gb:.2f} GB, "
          f"{allocator()}", file=sys.stderr)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow/Keras from one number."""
    import keras

    keras.utils.set_random_seed(seed)
