"""Keras `fit` as both training stages run it: the best validation epoch kept, every epoch logged.

Curves go to DVCLive (the files DVC versions and plots) and to TensorBoard (one view across
runs, see `distribute.tensorboard_dir`). With the environment variable TRANSFER_EPOCH_MODELS set
to a folder, every epoch's model is also saved there, as `<stage>/epoch-NN.keras` (the
benchmark's accuracy frontier scores them on the test set afterwards: `bench/frontier.py`).
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
from dvclive import Live
from dvclive.keras import DVCLiveCallback

from transfer.runtime.commits import require_commit
from transfer.runtime.progress import Ticker, keras_verbosity, on_terminal

EPOCH_MODELS = "TRANSFER_EPOCH_MODELS"  # environment variable: a folder for every epoch's model


class LogLines(keras.callbacks.Callback):
    """Lines within each epoch for a log (Keras's own verbose=2 prints one per epoch): the
    epoch, the batch of training or validation, elapsed time and about how long is left, at
    least every LOG_EVERY seconds, so that a slow run can be told from a hung one."""

    def __init__(self, stage: str, validation_steps: int | None) -> None:
        """Lines headed `stage`; `validation_steps` per epoch, if known."""
        super().__init__()
        self.stage, self.validation_steps = stage, validation_steps
        self.epoch, self.ticker = 0, Ticker(stage, None)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        """Start the epoch's training clock."""
        self.epoch = epoch + 1
        self.ticker = Ticker(f"{self.stage}: epoch {self.epoch}/{self.params['epochs']}, "
                             "training", self.params.get("steps"), last_line=False)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """A line if one is due."""
        self.ticker.tick(batch + 1)

    def on_test_begin(self, logs: dict | None = None) -> None:
        """Start the epoch's validation clock."""
        self.ticker = Ticker(f"{self.stage}: epoch {self.epoch}/{self.params['epochs']}, "
                             "validation", self.validation_steps, last_line=False)

    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None:
        """A line if one is due."""
        self.ticker.tick(batch + 1)


def steps_of(data: object, batch_size: int | None) -> int | None:
    """The batches in one pass over validation `data` (arrays in batches of `batch_size`, a
    tf.data.Dataset or a Keras PyDataset), if known."""
    if isinstance(data, tuple) and batch_size:
        return -(-len(data[0]) // batch_size)
    if hasattr(data, "cardinality"):
        steps = int(data.cardinality())
        return steps if steps > 0 else None
    return len(data) if hasattr(data, "__len__") else None


def fit_logged(model: keras.Model, live_dir: Path, tensorboard: Path | None, checkpoint: Path,
               patience: int | None, first_epoch: int = 0, baseline: float | None = None,
               **fit_args) -> dict:
    """`model.fit` keeping the best validation epoch in `checkpoint`, logged to DVCLive in
    `live_dir` and to TensorBoard in `tensorboard` (if given), epochs numbered from
    `first_epoch`; returns the DVCLive summary (`best_epoch` counts from 1, as Keras prints
    epochs; DVCLive's steps count from 0).

    With a `baseline` validation accuracy, only an epoch that beats it is saved (the caller
    saved the starting weights in `checkpoint`), and the summary says whether one did
    (`improved`)."""
    callbacks = [keras.callbacks.ModelCheckpoint(
                     checkpoint, monitor="val_accuracy", save_best_only=True,
                     save_weights_only=str(checkpoint).endswith(".weights.h5"),
                     initial_value_threshold=baseline)]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(tensorboard))
    if os.environ.get(EPOCH_MODELS):
        callbacks.append(keras.callbacks.ModelCheckpoint(
            Path(os.environ[EPOCH_MODELS]) / live_dir.name / "epoch-{epoch:02d}.keras"))
    if patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=patience))
    if not on_terminal():
        callbacks.append(LogLines(live_dir.name, steps_of(fit_args.get("validation_data"),
                                                          fit_args.get("batch_size"))))
    require_commit()
    with Live(str(live_dir), dvcyaml=False, save_dvc_exp=False) as live:
        live.step = first_epoch
        history = model.fit(initial_epoch=first_epoch, verbose=keras_verbosity(),
                            callbacks=[*callbacks, DVCLiveCallback(live=live)], **fit_args)
        val = history.history["val_accuracy"]
        best = int(np.argmax(val))
        live.summary.update(epochs=first_epoch + len(val), best_epoch=first_epoch + best + 1,
                            best_val_accuracy=float(val[best]),
                            best_val_loss=float(history.history["val_loss"][best]))
        if baseline is not None:
            live.summary["improved"] = bool(val[best] > baseline)
    return live.summary
