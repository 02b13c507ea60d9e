"""Stage `train`: fit the classification head on the cached features (the base never runs).

Keeps the best validation epoch (ModelCheckpoint), stops early, and logs curves to
DVCLive and TensorBoard, under `train.strategy` (see `transfer.distribute`). Writes
`models/head.keras`, `dvclive/train/` and this run's TensorBoard logs
(see `distribute.chief_tensorboard_dir`).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from transfer import distribute
from transfer.backbones import CLASSIFIER
from transfer.features import OUT as FEATURES
from transfer.fetch import OUT as PREPARED
from transfer.params import TrainParams, load_params
from transfer.runtime import atomic_path, pin_keras_archive, read_json, run_stage, seed_everything

HEAD = Path("models/head.keras")
LIVE = Path("dvclive/train")


def build_head(feature_dim: int, num_classes: int, p: TrainParams) -> keras.Sequential:
    """Dropout, an optional hidden ReLU layer, and a softmax classifier."""
    layers = [keras.Input((feature_dim,)), keras.layers.Dropout(p.dropout)]
    if p.hidden_units:
        layers += [keras.layers.Dense(p.hidden_units, activation="relu"),
                   keras.layers.Dropout(p.dropout)]
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name=CLASSIFIER))
    return keras.Sequential(layers, name="head")


def load_features(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Cached features of one split as float32, with labels."""
    return (np.load(FEATURES / f"{split}_x.npy").astype(np.float32),
            np.load(FEATURES / f"{split}_y.npy"))


def fit_logged(model: keras.Model, live_dir: Path, tensorboard: Path | None, checkpoint: Path,
               patience: int | None, first_epoch: int = 0, baseline: float | None = None,
               **fit_args) -> dict:
    """`model.fit` keeping the best validation epoch in `checkpoint`, logged to DVCLive in
    `live_dir` and to TensorBoard in `tensorboard` (if given), epochs numbered from
    `first_epoch`; returns the DVCLive summary.

    With a `baseline` validation accuracy, only an epoch that beats it is saved (the caller
    saved the starting weights in `checkpoint`), and the summary says whether one did
    (`improved`)."""
    callbacks = [keras.callbacks.ModelCheckpoint(
                     checkpoint, monitor="val_accuracy", save_best_only=True,
                     save_weights_only=str(checkpoint).endswith(".weights.h5"),
                     initial_value_threshold=baseline)]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(tensorboard))
    if patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience))
    with Live(str(live_dir), dvcyaml=False, save_dvc_exp=False) as live:
        live.step = first_epoch
        history = model.fit(initial_epoch=first_epoch, verbose=2,
                            callbacks=[*callbacks, DVCLiveCallback(live=live)], **fit_args)
        val = history.history["val_accuracy"]
        best = int(np.argmax(val))
        live.summary.update(epochs=first_epoch + len(val), best_epoch=first_epoch + best,
                            best_val_accuracy=float(val[best]),
                            best_val_loss=float(history.history["val_loss"][best]))
        if baseline is not None:
            live.summary["improved"] = bool(val[best] > baseline)
    return live.summary


def main() -> None:
    """Train the head on features/ and save the best epoch as models/head.keras."""
    params = load_params()
    p = params.train
    strategy = distribute.strategy(p.strategy, "train.strategy")
    seed_everything(params.seed)
    classes = read_json(PREPARED / "classes.json")
    x_train, y_train = load_features("train")
    with strategy.scope():
        head = build_head(x_train.shape[1], len(classes), p)
        head.compile(keras.optimizers.Adam(p.learning_rate),
                     loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    tensorboard = distribute.chief_tensorboard_dir(strategy, "train")
    with distribute.output_root(strategy) as root, atomic_path(root / HEAD) as checkpoint:
        summary = fit_logged(head, root / LIVE, tensorboard, checkpoint, p.patience,
                             x=x_train, y=y_train, validation_data=load_features("val"),
                             epochs=p.epochs,
                             batch_size=distribute.global_batch(strategy, p.batch_size))
        pin_keras_archive(checkpoint)
    print(f"train: {strategy.num_replicas_in_sync} replicas, best val_accuracy "
          f"{summary['best_val_accuracy']:.4f} at epoch {summary['best_epoch']} of "
          f"{summary['epochs']}")


if __name__ == "__main__":
    run_stage(main)
