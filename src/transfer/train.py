"""Stage `train`: fit the classification head on the cached features (the base never runs).

Keeps the best validation epoch, stops early, and logs curves to DVCLive and TensorBoard
(`transfer.training.fitting`), under `train.strategy` (`transfer.training.distribute`). Writes
`models/head.keras` and `dvclive/train/`.
"""

from __future__ import annotations

import keras
import numpy as np

from transfer.models.heads import build_head
from transfer.models.saving import pin_keras_archive
from transfer.params.fields import load_params
from transfer.params.resolved import write_resolved
from transfer.params.training import TrainStageParams
from transfer.runtime.files import atomic_path, read_json
from transfer.runtime.paths import CLASSES, FEATURES, HEAD, STAGE_TIMES, TRAIN_LIVE
from transfer.runtime.stage import run_stage, seed_everything
from transfer.training import auto_params, distribute
from transfer.training.fitting import fit_logged


def load_features(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Cached features of one split as float32, with labels."""
    return (np.load(FEATURES / f"{split}_x.npy").astype(np.float32),
            np.load(FEATURES / f"{split}_y.npy"))


def main() -> None:
    """Train the head on features/ and save the best epoch as models/head.keras."""
    params = load_params(TrainStageParams)
    x_train, y_train = load_features("train")
    p = auto_params.resolved_train(params.train, len(y_train))
    strategy = distribute.strategy(p.strategy, "train.strategy")
    seed_everything(params.seed)
    classes = read_json(CLASSES)
    with strategy.scope():
        head = build_head(x_train.shape[1], len(classes), p)
        head.compile(keras.optimizers.Adam(p.learning_rate),
                     loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    tensorboard = distribute.chief_tensorboard_dir(strategy, "train")
    with distribute.output_root(strategy) as root, atomic_path(root / HEAD) as checkpoint:
        summary = fit_logged(head, root / TRAIN_LIVE, tensorboard, checkpoint, p.patience,
                             x=x_train, y=y_train, validation_data=load_features("val"),
                             epochs=p.epochs,
                             batch_size=distribute.global_batch(strategy, p.batch_size))
        pin_keras_archive(checkpoint)
        write_resolved("train", {"train": p}, root=root)
    print(f"train: {strategy.num_replicas_in_sync} replicas, best val_accuracy "
          f"{summary['best_val_accuracy']:.4f} at epoch {summary['best_epoch']} of "
          f"{summary['epochs']}")


if __name__ == "__main__":
    run_stage(main, STAGE_TIMES / "train.json")
