"""The head trained on augmented copies of the cached features, on validation (issue 37).

    .venv/bin/python -m bench.augmented_head WORKSPACE [WORKSPACE ...] [--copies 1 4 8]

Each WORKSPACE is one that has run `fetch`, `features` and `train` (`bench.photo_levers`
leaves them). The frozen extractor runs over COPIES - 1 augmented copies of every training
image (flips, rotation and zoom as the photo recipe before issue 37 had them: BEFORE_37)
besides the image itself, and the head is fitted on all of them as `train` fits it (its
params, batch rule, early stopping on validation); only the validation split is read. Prints
the validation accuracy per number of copies, the extractor's seconds, and writes
WORKSPACE/augmented_head.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np

from bench.common import params_of, script_parser
from bench.photos import BASELINES
from transfer.models.heads import build_head
from transfer.params.training import TrainParams
from transfer.training import auto_params

BEFORE_37 = BASELINES["before-37"]["finetune"]["augment"]  # rotation (share of a turn), zoom


def augmented_features(extractor: keras.Model, images: np.ndarray, copies: int,
                       seed: int) -> np.ndarray:
    """The extractor's features of `images`, then of `copies` - 1 augmented copies of them."""
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal", seed=seed),
                                keras.layers.RandomRotation(BEFORE_37["rotation"], seed=seed),
                                keras.layers.RandomZoom(BEFORE_37["zoom"], seed=seed)])
    parts = [extractor.predict(images, batch_size=64, verbose=0)]
    for _ in range(copies - 1):
        augmented = np.concatenate([augment(images[i:i + 64], training=True)
                                    for i in range(0, len(images), 64)])
        parts.append(extractor.predict(augmented, batch_size=64, verbose=0))
    return np.concatenate(parts)


def head_val_accuracy(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                      p: TrainParams, n_images: int, seed: int) -> float:
    """Best validation accuracy of the head fitted as `train` fits it (the batch resolved for
    the `n_images` distinct images)."""
    keras.utils.set_random_seed(seed)
    p = auto_params.resolved_train(p, n_images)
    head = build_head(x.shape[1], int(y.max()) + 1, p)
    head.compile(keras.optimizers.Adam(p.learning_rate), loss="sparse_categorical_crossentropy",
                 metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping("val_accuracy", patience=p.patience)
    history = head.fit(x, y, batch_size=p.batch_size, epochs=p.epochs, verbose=0,
                       validation_data=(x_val, y_val), callbacks=[stop])
    return float(max(history.history["val_accuracy"]))


def main() -> None:
    """Each workspace's head on 1 and more copies of its training features."""
    parser = script_parser(__doc__)
    parser.add_argument("workspaces", type=Path, nargs="+")
    parser.add_argument("--copies", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    for work in args.workspaces:
        params = params_of(work)
        p, seed = TrainParams(**params["train"]), params["seed"]
        extractor = keras.models.load_model(work / "models/extractor.keras")
        images = np.load(work / "data/prepared/train_x.npy")
        y = np.load(work / "data/prepared/train_y.npy")
        x_val, y_val = (np.load(work / f"features/val_{k}.npy") for k in ("x", "y"))
        start = time.perf_counter()
        features = augmented_features(extractor, images, max(args.copies), seed)
        seconds = time.perf_counter() - start
        result = {"seconds": seconds, "val": len(y_val), "accuracy": {
            k: head_val_accuracy(features[:k * len(y)], np.tile(y, k), x_val, y_val, p,
                                 len(y), seed) for k in args.copies}}
        (work / "augmented_head.json").write_text(json.dumps(result))
        print(work.name, json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
