"""How every stage runs: one-line errors, its wall time and memory recorded, seeding."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from transfer.runtime.errors import UserError
from transfer.runtime.files import write_json
from transfer.runtime.startup import STARTED


def run_stage(main: Callable[[], None], record: Path | None = None) -> None:
    """Run a stage's `main`, a UserError as one line and exit code 2; on success print its wall
    time (from the package's import) and peak memory, also into `record` when given."""
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


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow/Keras from one number."""
    import keras

    keras.utils.set_random_seed(seed)
