"""Stage `finetune`: unfreeze the base (or its top `finetune.layers`) and train it with the head.

The backbone runs in inference mode throughout (`training=False`, BatchNormalization layers
non-trainable), so it is a fixed function below the first unfrozen layer. When that frozen
bottom holds weights (`finetune.layers` a number), it is run once and its output cached on
disk; epochs then only run the top. With `finetune.layers: all` every step runs the whole base
on the images. A horizontal flip stays exact under caching: the flipped images' activations
are cached too, and each epoch draws one orientation per image. Other augmentations
(rotation, zoom, translation) change every pixel every epoch, so with them the whole model
runs on the images as in the Keras guide.

AdamW (decoupled weight decay) follows a linear warmup over the first `finetune.warmup` of the
steps, then a cosine decay to 0. Training runs in `finetune.precision` (loss scaling for
float16), with XLA if `finetune.jit_compile`, under `finetune.strategy` (see
`transfer.distribute`); the saved model is float32 either way.

Writes `models/finetuned.keras` (raw images in, class probabilities out) and
`dvclive/finetune/`, its epochs numbered after the head's so the curves join.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
import weakref
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from transfer import distribute, engines
from transfer.backbones import (
    backbone_layers,
    in_precision,
    predict_batches,
    split_below,
    unfreeze_top,
)
from transfer.data import load_split
from transfer.features import EXTRACTOR
from transfer.fetch import OUT as PREPARED
from transfer.params import AugmentParams, FinetuneParams, Params, load_params
from transfer.runtime import read_json, run_stage, save_model, seed_everything, write_json
from transfer.train import HEAD, fit_logged
from transfer.train import LIVE as HEAD_LIVE

MODEL = Path("models/finetuned.keras")
LIVE = Path("dvclive/finetune")


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


class Batches(keras.utils.PyDataset):
    """Shuffled (x, y) batches from in-memory arrays or `DiskRows`.

    With `flipped` (the same samples mirrored), each epoch takes every sample from `x` or
    `flipped` with equal chance: a random horizontal flip over cached activations.
    """

    def __init__(self, x: np.ndarray | DiskRows, y: np.ndarray, batch_size: int, seed: int,
                 flipped: DiskRows | None = None, shuffle: bool = True) -> None:
        """Keep references to the arrays and draw the first epoch's order."""
        super().__init__()
        self.x, self.y, self.flipped = x, y, flipped
        self.batch_size, self.shuffle = batch_size, shuffle
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        """Batches per epoch."""
        return math.ceil(len(self.y) / self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch `i` of the current epoch."""
        idx = np.sort(self.order[i * self.batch_size:(i + 1) * self.batch_size])
        x = np.asarray(self.x[idx], dtype=np.float32)
        if self.flipped is not None:
            flip = self.flip[idx]
            x[flip] = self.flipped[idx[flip]]
        return x, self.y[idx]

    def on_epoch_end(self) -> None:
        """Draw a new sample order and new flips."""
        n = len(self.y)
        self.order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        self.flip = self.rng.random(n) < 0.5


def cache(run: engines.Runner, shape: tuple[int, ...], x: np.ndarray, batch_size: int,
          directory: Path, name: str, flip: bool = False) -> DiskRows:
    """Run `run` over images `x` (mirrored if `flip`) into a file of float32 rows of `shape`."""
    out = DiskRows(directory / f"{name}.f32", (len(x), *shape))
    predict_batches(run, x, batch_size, out, desc=f"cache {name}",
                    transform=(lambda b: b[:, :, ::-1]) if flip else None)
    return out


def augmentation(p: AugmentParams) -> keras.Sequential:
    """The image augmentation layers asked for by `finetune.augment`."""
    layers = [keras.layers.RandomFlip("horizontal")] if p.flip else []
    if p.rotation:
        layers.append(keras.layers.RandomRotation(p.rotation))
    if p.zoom:
        layers.append(keras.layers.RandomZoom(p.zoom))
    if p.translation:
        layers.append(keras.layers.RandomTranslation(p.translation, p.translation))
    return keras.Sequential(layers, name="augment")


Split = tuple[np.ndarray, np.ndarray]


def on_activations(extractor: keras.Model, head: keras.Model, first: keras.layers.Layer,
                   train: Split, val: Split, params: Params, strategy: tf.distribute.Strategy,
                   tmp: Path) -> tuple[keras.Model, Batches, Batches]:
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
    engine = engines.choose(params.features.engine,
                            len(x_train) * (1 + p.augment.flip) + len(x_val), p.precision)
    start = time.perf_counter()
    run, shape = engines.runner(bottom, engine), bottom.output.shape[1:]
    flipped = None
    if p.augment.flip:
        flipped = cache(run, shape, x_train, bs, tmp, "train_flipped", flip=True)
    batches = (Batches(cache(run, shape, x_train, bs, tmp, "train"), y_train, batch_size,
                       params.seed, flipped=flipped),
               Batches(cache(run, shape, x_val, bs, tmp, "val"), y_val, batch_size, params.seed,
                       shuffle=False))
    print(f"finetune: cached the frozen bottom's activations with {engine} in "
          f"{time.perf_counter() - start:.1f}s")
    return model, *batches


def on_images(extractor: keras.Model, head: keras.Model, train: Split, val: Split,
              params: Params, strategy: tf.distribute.Strategy,
              ) -> tuple[keras.Model, Batches, Batches]:
    """Training model (under `strategy`) and batches over augmented images: the whole base
    runs every step."""
    batch_size = distribute.global_batch(strategy, params.finetune.batch_size)
    with strategy.scope():
        image = keras.Input(extractor.input.shape[1:])
        model = keras.Model(image, head(extractor(augmentation(params.finetune.augment)(image),
                                                  training=False)))
    return (model, Batches(*train, batch_size, params.seed),
            Batches(*val, batch_size, params.seed, shuffle=False))


def learning_rate_schedule(p: FinetuneParams, steps: int,
                           ) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warmup from 0 to `p.learning_rate` over `p.warmup` of `steps`, then cosine to 0."""
    warmup = int(p.warmup * steps)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, steps - warmup), alpha=0.0, warmup_target=p.learning_rate,
        warmup_steps=warmup)


def fine_tune(extractor: keras.Model, head: keras.Model, params: Params,
              strategy: tf.distribute.Strategy, root: Path, first_epoch: int,
              head_val_accuracy: float) -> dict:
    """Unfreeze the top of `extractor` and train it with `head` (both in place, both built under
    `strategy`), logging to `root`. The best epoch's weights are kept if it beats the head's
    validation accuracy, else the starting weights are. Returns the DVCLive summary."""
    p = params.finetune
    top_layers = unfreeze_top(extractor, p.layers)
    layers = backbone_layers(extractor)
    frozen_bottom = layers[:layers.index(top_layers[0])]
    train, val = load_split(PREPARED, "train"), load_split(PREPARED, "val")
    with tempfile.TemporaryDirectory(prefix="finetune-") as tmp:
        if p.augment.flip_only and any(layer.weights for layer in frozen_bottom):
            model, train_batches, val_batches = on_activations(
                extractor, head, top_layers[0], train, val, params, strategy, Path(tmp))
        else:
            model, train_batches, val_batches = on_images(extractor, head, train, val, params,
                                                          strategy)
        with strategy.scope():
            optimizer = keras.optimizers.AdamW(
                learning_rate_schedule(p, steps=p.epochs * len(train_batches)),
                weight_decay=p.weight_decay)
            if p.precision == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            model.compile(optimizer, loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"], jit_compile=p.jit_compile)
        best = Path(tmp) / "best.weights.h5"
        model.save_weights(best)  # the head on the frozen base: kept unless an epoch beats it
        tensorboard = distribute.chief_tensorboard_dir(strategy, "finetune")
        summary = fit_logged(model, root / LIVE, tensorboard, best, patience=None,
                             first_epoch=first_epoch, baseline=head_val_accuracy,
                             x=distribute.as_dataset(train_batches),
                             validation_data=distribute.as_dataset(val_batches),
                             epochs=first_epoch + p.epochs)
        model.load_weights(best)
    return summary


def main() -> None:
    """Fine-tune from the saved extractor and head; save the full model of the best epoch."""
    params = load_params()
    p = params.finetune
    strategy = distribute.strategy(p.strategy, "finetune.strategy")
    seed_everything(params.seed)
    head_summary = read_json(HEAD_LIVE / "metrics.json")
    first_epoch = head_summary["epochs"]
    with strategy.scope():
        extractor = keras.models.load_model(EXTRACTOR)
        head = keras.models.load_model(HEAD)
    with distribute.output_root(strategy) as root:
        if p.layers and p.epochs:
            with strategy.scope():
                extractor = in_precision(extractor, p.precision)
                head = in_precision(head, p.precision)
            summary = fine_tune(extractor, head, params, strategy, root, first_epoch,
                                head_summary["best_val_accuracy"])
            print(f"finetune: {strategy.num_replicas_in_sync} replicas, best val_accuracy "
                  f"{summary['best_val_accuracy']:.4f} at epoch {summary['best_epoch']}"
                  + ("" if summary["improved"] else
                     f", not above the head's {head_summary['best_val_accuracy']:.4f}: the head "
                     "on the frozen base is kept"))
        else:
            (root / LIVE / "plots" / "metrics").mkdir(parents=True, exist_ok=True)
            write_json(root / LIVE / "metrics.json", {"epochs": first_epoch, "skipped": True})
            print("finetune: skipped (finetune.layers or finetune.epochs is 0)")
        final = in_precision(keras.Model(extractor.input, head(extractor.output),
                                         name="classifier"), "float32")
        save_model(final, root / MODEL)

if __name__ == "__main__":
    run_stage(main)
