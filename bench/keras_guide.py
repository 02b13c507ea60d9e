"""The recipe of the Keras guides, timed from an image folder until a target validation accuracy.

    python -m bench.keras_guide DATA_DIR [--input-size 96] [--head-epochs 10]
        [--finetune-epochs 10] [--layers 20] [--target 0.87] [--cap-minutes 60]

As in "Transfer learning & fine-tuning" and "Image classification via fine-tuning with
EfficientNet" (keras.io): `image_dataset_from_directory` with a 10% validation split, the
frozen base inside the model (flip, resize, base in inference mode, pooling, dropout 0.2,
softmax), `fit` on the images with Adam (1e-3) until validation accuracy stops rising, then
the top `--layers` layers of the base unfrozen (BatchNormalization kept frozen) and trained
with Adam at 1e-5. Training stops as soon as an epoch's validation accuracy reaches
`--target`, or at the cap; the test set is read once, at the end. Prints one JSON line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras

from bench.common import script_parser
from transfer.models.efficientnet_lite import EfficientNetLite0


class Stop(keras.callbacks.Callback):
    """Stops training at the target validation accuracy or after the deadline; keeps a log."""

    def __init__(self, target: float, deadline: float, log: list[dict], phase: str) -> None:
        """Remember the target, the deadline (a `time.perf_counter` value) and the log."""
        super().__init__()
        self.target, self.deadline, self.log, self.phase = target, deadline, log, phase

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        """Log the epoch; stop at the target or past the deadline."""
        accuracy = float(logs["val_accuracy"])
        self.log.append({"phase": self.phase, "val_accuracy": round(accuracy, 4),
                         "seconds": round(time.perf_counter() - START, 1)})
        print(json.dumps(self.log[-1]), flush=True)
        if accuracy >= self.target or time.perf_counter() > self.deadline:
            self.model.stop_training = True


START = time.perf_counter()


def main() -> None:
    """Run the recipe on DATA_DIR (train/<class>/, test/<class>/) and print the outcome."""
    parser = script_parser(__doc__)
    parser.add_argument("data", type=Path)
    parser.add_argument("--input-size", type=int, default=96)
    parser.add_argument("--head-epochs", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=10)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--target", type=float, default=0.87)
    parser.add_argument("--cap-minutes", type=float, default=60)
    args = parser.parse_args()
    deadline = START + 60 * args.cap_minutes
    keras.utils.set_random_seed(42)
    load = dict(image_size=(32, 32), batch_size=128, seed=42)
    train, val = keras.utils.image_dataset_from_directory(
        args.data / "train", validation_split=0.1, subset="both", **load)
    test = keras.utils.image_dataset_from_directory(args.data / "test", shuffle=False, **load)
    classes = len(train.class_names)
    train, val, test = (d.cache().prefetch(-1) for d in (train, val, test))

    base = EfficientNetLite0(include_top=False, weights="imagenet",
                             input_shape=(args.input_size, args.input_size, 3))
    base.trainable = False
    image = keras.Input((32, 32, 3))
    x = keras.layers.RandomFlip("horizontal")(image)
    x = keras.layers.Resizing(args.input_size, args.input_size)(x)
    x = keras.layers.GlobalAveragePooling2D()(base(x, training=False))
    x = keras.layers.Dropout(0.2)(x)
    model = keras.Model(image, keras.layers.Dense(classes, activation="softmax")(x))
    log: list[dict] = []

    def fit(learning_rate: float, epochs: int, phase: str,
            *callbacks: keras.callbacks.Callback) -> None:
        """Compile the model at `learning_rate` and fit it for `epochs`, logged as `phase`."""
        model.compile(keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(train, validation_data=val, epochs=epochs, verbose=2,
                  callbacks=[Stop(args.target, deadline, log, phase), *callbacks])

    fit(1e-3, args.head_epochs, "head", keras.callbacks.EarlyStopping(
        "val_accuracy", patience=2, restore_best_weights=True))
    if log[-1]["val_accuracy"] < args.target and time.perf_counter() < deadline:
        base.trainable = True
        for layer in base.layers[:-args.layers]:
            layer.trainable = False
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
        fit(1e-5, args.finetune_epochs, "finetune")
    seconds = time.perf_counter() - START
    best = max(entry["val_accuracy"] for entry in log)
    test_accuracy = model.evaluate(test, verbose=0, return_dict=True)["accuracy"]
    print(json.dumps({"seconds": round(seconds, 1), "reached": best >= args.target,
                      "best_val_accuracy": best, "test_accuracy": round(test_accuracy, 4),
                      "epochs": log}))


if __name__ == "__main__":
    main()
