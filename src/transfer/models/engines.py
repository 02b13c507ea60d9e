"""Inference engines for the passes that only run a frozen network: Keras, or OpenVINO.

`features`, the fine-tuning cache pass, `evaluate`'s test-set pass and `predict` run models
that never train. On a CPU, OpenVINO (PyPI `openvino`) runs them about twice as fast as Keras
(bench/results/results.md), once the model is converted (about 5 s). So `auto` takes OpenVINO on a
machine without a GPU for at least AUTO_MIN_IMAGES images, else Keras; a missing OpenVINO falls
back to Keras with one line saying so. OpenVINO runs float32 models only. The model goes through
a Keras SavedModel export in inference mode and OpenVINO's converter, and is compiled in
float32 (not OpenVINO's bfloat16 default on CPUs with AMX), so its outputs equal Keras's within
TOLERANCE. Saved models stay Keras models. `predict_batches` runs either over an array in
batches. TensorFlow is imported only when an engine is chosen
or run, so the paper can quote TOLERANCE without it.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from transfer.runtime.progress import progress

if TYPE_CHECKING:
    import keras

# OpenVINO's outputs differ from Keras's by at most this share of Keras's largest |output|
# (tests/e2e/test_engines.py; measured: about 5e-6 with EfficientNetLite0's ImageNet weights).
TOLERANCE = 1e-4
# Converting costs about 5 s (EfficientNetLite0) to 9 s (EfficientNetB0 at 224 px); OpenVINO
# saves about 1 ms (Lite0, 96 px) to 5 ms (B0, 224 px) an image on this project's 2-core CPU:
# it pays from about 5,000 and 1,800 images.
AUTO_MIN_IMAGES = 2048

Runner = Callable[[np.ndarray], np.ndarray]


def choose(engine: str, images: int, precision: str = "float32") -> str:
    """The engine that runs `images` images of a model in the Keras dtype policy `precision`
    for the param value `engine` on this machine. OpenVINO runs float32 models only (its
    converter refuses bfloat16 ones); other policies run on Keras."""
    import tensorflow as tf

    if engine == "keras" or engine == "auto" and (
            images < AUTO_MIN_IMAGES or precision != "float32"
            or tf.config.list_physical_devices("GPU")):
        return "keras"
    if precision != "float32":
        print(f"engine: OpenVINO runs float32 models here, so Keras runs this {precision} one",
              file=sys.stderr)
        return "keras"
    if importlib.util.find_spec("openvino") is None:
        print(f"engine: OpenVINO is not installed (pip install openvino), so Keras runs the "
              f"frozen network instead of engine {engine!r}", file=sys.stderr)
        return "keras"
    return "openvino"


def runner(model: keras.Model, engine: str) -> Runner:
    """A function from a float32 batch to `model`'s output on it, run by `engine` (chosen)."""
    if engine == "keras":
        return model.predict_on_batch
    import keras
    import openvino
    import tensorflow as tf

    archive = keras.export.ExportArchive()  # model.export() may trace dropout in training mode
    archive.track(model)
    archive.add_endpoint("serve", lambda images: model(images, training=False),
                         input_signature=[tf.TensorSpec(model.input_shape, tf.float32)])
    with tempfile.TemporaryDirectory(prefix="transfer-openvino-") as saved:
        archive.write_out(saved, verbose=False)
        converted = openvino.convert_model(saved)
    compiled = openvino.Core().compile_model(converted, "CPU",
                                             {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda batch: compiled(batch)[0]


def predict_batches(run: Runner, x: np.ndarray, batch_size: int,
                    out: np.ndarray, desc: str = "",
                    transform: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
    """Write `run(transform(x))` into `out` batch by batch (x, out may be memory-mapped);
    `run` maps a float32 batch to a model's output (see `runner`), `transform` a batch to what
    `run` is given."""
    starts = range(0, len(x), batch_size)
    for start in progress(starts, len(starts), desc):
        rows = slice(start, start + batch_size)
        batch = np.asarray(x[rows], dtype=np.float32)
        if transform is not None:
            batch = transform(batch)
        out[rows] = run(batch)
