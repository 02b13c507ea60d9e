"""Row 1's floor: the ways to run a project's frozen extractor, each timed on the same arrays.

    python -m bench.floor PROJECT WAY [--images N] [--batch-size B]

Prints one JSON line, the images/s of the way `WAY` (a key of `ways`) over the first N decoded
images of PROJECT's `data/prepared` (train, val, test, in the `features` stage's order), run
on PROJECT's `models/extractor.keras` after a warm-up batch. A process of its own, so that
bench.py can interleave it with runs of the stage itself, each in a fresh interpreter.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench.common import script_parser
from transfer.data.arrays import SPLITS, load_split
from transfer.models import engines

if TYPE_CHECKING:
    import keras

OPENVINO = "OpenVINO, float32 (`features.engine: openvino`)"


def ways(model: keras.Model, batch_size: int) -> dict[str, Callable[[np.ndarray], object]]:
    """Each way to run `model` over a float32 array in batches of `batch_size`, by name:
    Keras `predict`, a `predict_on_batch` loop, a `tf.function` call, OpenVINO (converted on
    its first call, the warm-up, and only if it is run)."""
    import tensorflow as tf

    call = tf.function(lambda batch: model(batch, training=False), reduce_retracing=True)
    converted = functools.cache(lambda: engines.runner(model, "openvino"))

    def loop(run: engines.Runner) -> Callable[[np.ndarray], object]:
        """`run` over the images, one batch of `batch_size` at a time."""
        return lambda images: [run(images[i:i + batch_size])
                               for i in range(0, len(images), batch_size)]

    return {"Keras `predict`": lambda images: model.predict(images, batch_size=batch_size,
                                                            verbose=0),
            "`predict_on_batch` loop": loop(model.predict_on_batch),
            "`tf.function` call": loop(lambda batch: call(batch).numpy()),
            OPENVINO: loop(lambda batch: converted()(batch))}


def images(project: Path, count: int | None) -> np.ndarray:
    """The first `count` (None: all) prepared images of `project`, splits in order, as float32."""
    x = np.concatenate([load_split(project / "data/prepared", split)[0] for split in SPLITS])
    return np.asarray(x[:count], np.float32)


def seconds(way: Callable[[np.ndarray], object], x: np.ndarray, batch_size: int) -> float:
    """Seconds of one pass of `way` over `x`, after a warm-up pass over its first batch."""
    way(x[:batch_size])
    start = time.perf_counter()
    way(x)
    return time.perf_counter() - start


def main() -> None:
    """Time one way in this process and print its images/s as JSON."""
    import keras

    parser = script_parser(__doc__)
    parser.add_argument("project", type=Path)
    parser.add_argument("way")
    parser.add_argument("--images", type=int, help="how many (default: all)")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    model = keras.models.load_model(args.project / "models/extractor.keras")
    way = ways(model, args.batch_size)[args.way]
    x = images(args.project, args.images)
    print(json.dumps({"way": args.way, "images": len(x),
                      "images_per_second": len(x) / seconds(way, x, args.batch_size)}))


if __name__ == "__main__":
    main()
