"""The activation cache: fine-tuning the top of the base without running its frozen bottom.

With `finetune.layers` a number, the layers below the lowest unfrozen one are a fixed function
(inference mode, weights frozen). `split_below` cuts the extractor into that bottom and a
trainable top at the deepest single tensor; the bottom runs once over the images (on
`features.engine`) and its output is written to disk, and each epoch runs only the top on
those rows. Flips survive as two cached views of each training image, the image and its
mirror; each epoch draws one of them per image (`transfer.training.batches`).
"""

from __future__ import annotations

import math
import os
import time
import weakref
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer.models import engines
from transfer.models.unfreezing import backbone_layers
from transfer.params.training import FinetuneStageParams
from transfer.training import distribute
from transfer.training.batches import Batches

Split = tuple[np.ndarray, np.ndarray]


class DiskRows:
    """A float32 array in a file, written by slices and read by rows through `pwrite`/`preadv`.

    Never memory-mapped: a mapped cache counts in the process's resident memory once its
    pages are touched (3.4 GB for CIFAR-10 at 224 px), a file read by rows costs one batch.
    """

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        """Create the file at its full size."""
        self.shape = shape
        self.row_bytes = 4 * math.prod(shape[1:])
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(self.fd, shape[0] * self.row_bytes)
        weakref.finalize(self, os.close, self.fd)

    def __len__(self) -> int:
        """Number of rows."""
        return self.shape[0]

    def __setitem__(self, rows: slice, values: np.ndarray) -> None:
        """Write consecutive rows starting at `rows.start`."""
        data = np.ascontiguousarray(values, dtype=np.float32)
        os.pwrite(self.fd, data.tobytes(), rows.start * self.row_bytes)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        """The rows at indices `rows`, in that order."""
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.float32)
        for k, row in enumerate(rows):
            os.preadv(self.fd, [out[k]], int(row) * self.row_bytes)
        return out


def mirrored(batch: np.ndarray) -> np.ndarray:
    """The images `batch` mirrored left to right."""
    return batch[:, :, ::-1]


def cache(run: engines.Runner, shape: tuple[int, ...], x: np.ndarray, batch_size: int,
          directory: Path, name: str, mirror: bool = False) -> DiskRows:
    """Run `run` over images `x` (mirrored with `mirror`) into a file of float32 rows of
    `shape`."""
    out = DiskRows(directory / f"{name}.f32", (len(x), *shape))
    engines.predict_batches(run, x, batch_size, out, desc=f"cache {name}",
                            transform=mirrored if mirror else None)
    return out


def disk_bytes(directory: Path) -> int:
    """Bytes the cache files in `directory` hold."""
    return sum(f.stat().st_size for f in directory.glob("*.f32"))


def sources(node: object) -> list[str]:
    """The names of the layers whose outputs a serialized node (or any part of one) reads."""
    if isinstance(node, dict):
        history = node.get("config", {}).get("keras_history") \
            if node.get("class_name") == "__keras_tensor__" else None
        return [history[0]] if history else [name for value in node.values()
                                            for name in sources(value)]
    if isinstance(node, list | tuple):
        return [name for value in node for name in sources(value)]
    return []


def cut_positions(extractor: keras.Model) -> list[int]:
    """Positions of the layers whose output is a single-tensor cut: everything above such a
    layer depends on the input only through its output."""
    layers = extractor.layers
    position = {layer.name: i for i, layer in enumerate(layers)}
    reads = {layer["name"]: [position[name] for name in sources(layer["inbound_nodes"])]
             for layer in extractor.get_config()["layers"]}  # the graph, through public API
    # lowest[i]: the lowest layer position read by any layer at position >= i.
    lowest = [len(layers)] * (len(layers) + 1)
    for i in range(len(layers) - 1, -1, -1):
        lowest[i] = min([lowest[i + 1], *reads[layers[i].name]])
    return [c for c in range(len(layers)) if lowest[c + 1] >= c]


def split_below(extractor: keras.Model,
                first: keras.layers.Layer) -> tuple[keras.Model, keras.Model]:
    """Split the extractor into (bottom, top) at the deepest single tensor below layer `first`.

    Everything above the cut depends on the input only through that one tensor, so the bottom
    can be run once and its output cached, while the top is trained on the cached tensors.
    """
    below = extractor.layers.index(first)
    cut = max(c for c in cut_positions(extractor) if c < below)
    tensor = extractor.layers[cut].output
    return keras.Model(extractor.input, tensor), keras.Model(tensor, extractor.output)


def layers_above_stride(extractor: keras.Model, stride: int) -> int | None:
    """How many top backbone layers to unfreeze so that the frozen bottom ends at the smallest
    single-tensor activation at `stride` (the deepest of equals): the cheapest cache of the
    base up to that stride. None when the base has no such activation."""
    layers = extractor.layers
    size = (extractor.get_layer("resize") if "resize" in [layer.name for layer in layers]
            else layers[0]).output.shape[1]  # the side the extractor resizes its images to
    backbone = backbone_layers(extractor)
    shapes = {c: layers[c].output.shape for c in cut_positions(extractor)
              if layers[c] in backbone}
    at_stride = [c for c, shape in shapes.items()
                 if len(shape) == 4 and round(math.log2(size / shape[1])) == math.log2(stride)]
    if not at_stride:
        return None
    cut = min(at_stride, key=lambda c: (math.prod(shapes[c][1:]), -c))
    return len(backbone) - backbone.index(layers[cut]) - 1


def on_activations(extractor: keras.Model, head: keras.Model, first: keras.layers.Layer,
                   train: Split, val: Split, params: FinetuneStageParams,
                   strategy: tf.distribute.Strategy, tmp: Path,
                   ) -> tuple[keras.Model, Batches, Batches]:
    """Training model (under `strategy`) and batches over cached activations of the frozen
    bottom of the base, run by `features.engine`. The cache is plain inference, outside the
    strategy: Keras 3 gives every replica the whole of a `predict_on_batch` batch."""
    p, bs = params.finetune, params.features.batch_size
    batch_size = distribute.global_batch(strategy, p.batch_size)
    bottom, top = split_below(extractor, first)
    bottom.jit_compile = p.jit_compile
    with strategy.scope():
        acts = keras.Input(top.input.shape[1:])
        model = keras.Model(acts, head(top(acts, training=False)))
    (x_train, y_train), (x_val, y_val) = train, val
    views = 1 + p.augment.flip
    engine = engines.choose(params.features.engine, len(x_train) * views + len(x_val),
                            p.precision)
    start = time.perf_counter()
    run, shape = engines.runner(bottom, engine), bottom.output.shape[1:]
    train_views = [cache(run, shape, x_train, bs, tmp, f"train_view{k}", mirror=k == 1)
                   for k in range(views)]
    batches = (Batches(train_views, y_train, batch_size, params.seed),
               Batches(cache(run, shape, x_val, bs, tmp, "val"), y_val, batch_size, params.seed,
                       shuffle=False))
    print(f"finetune: cached the frozen bottom's activations of {views} views of the "
          f"training images with {engine} in {time.perf_counter() - start:.1f}s, "
          f"{disk_bytes(tmp) / 2**30:.2f} GiB on disk")
    return model, *batches
