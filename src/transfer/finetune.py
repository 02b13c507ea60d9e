"""Stage `finetune`: unfreeze the top `finetune.layers` of the base and train them with the head.

The backbone runs in inference mode throughout (`training=False`, BatchNormalization layers
non-trainable), so it is a fixed function below the first unfrozen layer. That frozen bottom
is run once and its output cached on disk; epochs then only run the top. A horizontal flip
stays exact under caching: the flipped images' activations are cached too, and each epoch
draws one orientation per image. Other augmentations (rotation, zoom, translation) change
every pixel every epoch, so with them the whole model runs on the images as in the Keras guide.

Writes `models/finetuned.keras` (raw images in, class probabilities out) and
`dvclive/finetune/`, its epochs numbered after the head's so the curves join.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import keras
import numpy as np

from transfer.backbones import predict_batches, split_below, unfreeze_top
from transfer.data import load_split
from transfer.features import EXTRACTOR
from transfer.fetch import OUT as PREPARED
from transfer.params import AugmentParams, Params, load_params
from transfer.runtime import atomic_path, read_json, run_stage, seed_everything, write_json
from transfer.train import HEAD, fit_logged
from transfer.train import LIVE as HEAD_LIVE

MODEL = Path("models/finetuned.keras")
LIVE = Path("dvclive/finetune")
TENSORBOARD = Path("logs/finetune")


class Batches(keras.utils.PyDataset):
    """Shuffled (x, y) batches from arrays that may be memory-mapped.

    With `flipped` (the same samples mirrored), each epoch takes every sample from `x` or
    `flipped` with equal chance: a random horizontal flip over cached activations.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int,
                 flipped: np.ndarray | None = None, shuffle: bool = True) -> None:
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
        x = self.x[idx]
        if self.flipped is not None:
            mask = self.flip[idx].reshape((-1,) + (1,) * (x.ndim - 1))
            x = np.where(mask, self.flipped[idx], x)
        return x.astype(np.float32), self.y[idx]

    def on_epoch_end(self) -> None:
        """Draw a new sample order and new flips."""
        n = len(self.y)
        self.order = self.rng.permutation(n) if self.shuffle else np.arange(n)
        self.flip = self.rng.random(n) < 0.5


def cache(model: keras.Model, x: np.ndarray, batch_size: int, directory: Path, name: str,
          flip: bool = False) -> np.ndarray:
    """Run `model` over images `x` (mirrored if `flip`) into a float32 memory-mapped file."""
    out = np.lib.format.open_memmap(directory / f"{name}.npy", mode="w+", dtype=np.float32,
                                    shape=(len(x), *model.output.shape[1:]))
    predict_batches(model, x, batch_size, out, desc=f"cache {name}",
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
                   train: Split, val: Split, params: Params,
                   tmp: Path) -> tuple[keras.Model, Batches, Batches]:
    """Training model and batches over cached activations of the frozen bottom of the base."""
    p, bs = params.finetune, params.features.batch_size
    bottom, top = split_below(extractor, first)
    acts = keras.Input(top.input.shape[1:])
    model = keras.Model(acts, head(top(acts, training=False)))
    (x_train, y_train), (x_val, y_val) = train, val
    flipped = None
    if p.augment.flip:
        flipped = cache(bottom, x_train, bs, tmp, "train_flipped", flip=True)
    return (model,
            Batches(cache(bottom, x_train, bs, tmp, "train"), y_train, p.batch_size, params.seed,
                    flipped=flipped),
            Batches(cache(bottom, x_val, bs, tmp, "val"), y_val, p.batch_size, params.seed,
                    shuffle=False))


def on_images(extractor: keras.Model, head: keras.Model, train: Split, val: Split,
              params: Params) -> tuple[keras.Model, Batches, Batches]:
    """Training model and batches over augmented images: the whole base runs every step."""
    p = params.finetune
    image = keras.Input(extractor.input.shape[1:])
    model = keras.Model(image, head(extractor(augmentation(p.augment)(image), training=False)))
    return (model, Batches(*train, p.batch_size, params.seed),
            Batches(*val, p.batch_size, params.seed, shuffle=False))


def main() -> None:
    """Fine-tune from the saved extractor and head; save the full model of the best epoch."""
    params = load_params()
    p = params.finetune
    seed_everything(params.seed)
    extractor = keras.models.load_model(EXTRACTOR)
    head = keras.models.load_model(HEAD)
    first_epoch = read_json(HEAD_LIVE / "metrics.json")["epochs"]
    if p.layers and p.epochs:
        top_layers = unfreeze_top(extractor, p.layers)
        train, val = load_split(PREPARED, "train"), load_split(PREPARED, "val")
        with tempfile.TemporaryDirectory(prefix="finetune-") as tmp:
            if p.augment.flip_only:
                model, train_batches, val_batches = on_activations(
                    extractor, head, top_layers[0], train, val, params, Path(tmp))
            else:
                model, train_batches, val_batches = on_images(extractor, head, train, val, params)
            model.compile(keras.optimizers.Adam(p.learning_rate),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            best = Path(tmp) / "best.weights.h5"
            summary = fit_logged(model, LIVE, TENSORBOARD, best, patience=None,
                                 first_epoch=first_epoch, x=train_batches,
                                 validation_data=val_batches, epochs=first_epoch + p.epochs)
            model.load_weights(best)
        print(f"finetune: best val_accuracy {summary['best_val_accuracy']:.4f} "
              f"at epoch {summary['best_epoch']}")
    else:
        (LIVE / "plots" / "metrics").mkdir(parents=True, exist_ok=True)
        write_json(LIVE / "metrics.json", {"epochs": first_epoch, "skipped": True})
        print("finetune: skipped (finetune.layers or finetune.epochs is 0)")
    final = keras.Model(extractor.input, head(extractor.output), name="classifier")
    with atomic_path(MODEL) as tmp:
        final.save(tmp)


if __name__ == "__main__":
    run_stage(main)
