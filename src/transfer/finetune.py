"""Stage `finetune`: unfreeze the base (or its top `finetune.layers`) and train it with the head.

The backbone runs in inference mode throughout (`training=False`, BatchNormalization layers
non-trainable). With `finetune.layers: all` (what `auto` gives photos) every step runs the
whole base on the images, augmented by Keras preprocessing layers. With a number of top layers
(what `auto` gives thumbnails) and no augmentation but flips, the frozen bottom runs once over
the training images and their mirrors and its activations are cached
(`transfer.training.activation_cache`).

AdamW (decoupled weight decay) follows a linear warmup over the first `finetune.warmup` of the
steps, then a cosine decay to 0. Training runs in `finetune.precision` (loss scaling for
float16), with XLA if `finetune.jit_compile`, under `finetune.strategy` (see
`transfer.training.distribute`); the saved model is float32 either way.

Writes `models/finetuned.keras` (raw images in, class probabilities out) and
`dvclive/finetune/`, its epochs numbered after the head's so the curves join.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable
from pathlib import Path

import keras
import tensorflow as tf

from transfer.data.arrays import load_split
from transfer.models.precision import in_precision
from transfer.models.saving import save_model
from transfer.models.unfreezing import backbone_layers, unfreeze_top
from transfer.params.fields import load_params
from transfer.params.resolved import write_resolved
from transfer.params.training import AugmentParams, FinetuneParams, FinetuneStageParams
from transfer.runtime.files import read_json, write_json
from transfer.runtime.paths import (
    EXTRACTOR,
    FINETUNE_LIVE,
    FINETUNED,
    HEAD,
    PREPARED,
    STAGE_TIMES,
    TRAIN_LIVE,
)
from transfer.runtime.stage import run_stage, seed_everything
from transfer.training import auto_params, distribute, recipe
from transfer.training.activation_cache import (
    Split,
    disk_bytes,
    layers_above_stride,
    on_activations,
)
from transfer.training.batches import Batches
from transfer.training.fitting import fit_logged


def augmentation(p: AugmentParams) -> keras.Sequential:
    """The image augmentation layers asked for by `finetune.augment`."""
    layers = [keras.layers.RandomFlip("horizontal")] if p.flip else []
    if p.rotation:
        layers.append(keras.layers.RandomRotation(p.rotation))
    if p.zoom:
        layers.append(keras.layers.RandomZoom(p.zoom))
    return keras.Sequential(layers, name="augment")


def on_images(extractor: keras.Model, head: keras.Model, train: Split, val: Split,
              params: FinetuneStageParams, strategy: tf.distribute.Strategy,
              ) -> tuple[keras.Model, Batches, Batches]:
    """Training model (under `strategy`) and batches over augmented images: the whole base
    runs every step."""
    p = params.finetune
    batch_size = distribute.global_batch(strategy, p.batch_size)
    with strategy.scope():
        image = keras.Input(extractor.input.shape[1:])
        model = keras.Model(image, head(extractor(augmentation(p.augment)(image),
                                                  training=False)))
    return (model, Batches(*train, batch_size, params.seed),
            Batches(*val, batch_size, params.seed, shuffle=False))


def loss(classes: int, label_smoothing: float) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """Per-image cross-entropy on integer labels, each spread by `label_smoothing` over the
    classes."""
    if not label_smoothing:
        return keras.losses.sparse_categorical_crossentropy

    def smoothed_crossentropy(labels: tf.Tensor, probs: tf.Tensor) -> tf.Tensor:
        """Cross-entropy against the smoothed one-hot labels."""
        one_hot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(labels, (-1,)), "int32"),
                                    classes)
        return keras.losses.categorical_crossentropy(one_hot, probs,
                                                     label_smoothing=label_smoothing)
    return smoothed_crossentropy


def learning_rate_schedule(p: FinetuneParams, steps: int,
                           ) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warmup from 0 to `p.learning_rate` over `p.warmup` of `steps`, then cosine to 0."""
    warmup = int(p.warmup * steps)
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, steps - warmup), alpha=0.0, warmup_target=p.learning_rate,
        warmup_steps=warmup)


def compile_for(model: keras.Model, p: FinetuneParams, steps: int) -> None:
    """Compile `model` to fine-tune as `p` says, over `steps` steps: AdamW on the warmup and
    cosine schedule (loss scaling for float16), the cross-entropy with `p.label_smoothing`."""
    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate_schedule(p, steps),
                                       weight_decay=p.weight_decay)
    if p.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer, loss=loss(model.output.shape[-1], p.label_smoothing),
                  metrics=["accuracy"], jit_compile=p.jit_compile)


def fine_tune(extractor: keras.Model, head: keras.Model, params: FinetuneStageParams,
              strategy: tf.distribute.Strategy, root: Path, first_epoch: int,
              head_val_accuracy: float) -> tuple[dict, int]:
    """Unfreeze the top of `extractor` and train it with `head` (both in place, both built under
    `strategy`), logging to `root`. The best epoch's weights are kept if it beats the head's
    validation accuracy, else the starting weights are. Returns the DVCLive summary and the
    bytes of the activation cache (0 without one)."""
    p = params.finetune
    top_layers = unfreeze_top(extractor, p.layers)
    layers = backbone_layers(extractor)
    frozen_bottom = layers[:layers.index(top_layers[0])]
    train, val = load_split(PREPARED, "train"), load_split(PREPARED, "val")
    cache_bytes = 0
    with tempfile.TemporaryDirectory(prefix="finetune-") as tmp:
        if p.augment.cacheable and any(layer.weights for layer in frozen_bottom):
            model, train_batches, val_batches = on_activations(
                extractor, head, top_layers[0], train, val, params, strategy, Path(tmp))
            cache_bytes = disk_bytes(Path(tmp))
        else:
            model, train_batches, val_batches = on_images(extractor, head, train, val, params,
                                                          strategy)
        with strategy.scope():
            compile_for(model, p, steps=p.epochs * len(train_batches))
        best = Path(tmp) / "best.weights.h5"
        with strategy.scope():  # built now, so the saved file and the trained model match
            model.optimizer.build(model.trainable_variables)
        model.save_weights(best)  # the head on the frozen base: kept unless an epoch beats it
        tensorboard = distribute.chief_tensorboard_dir(strategy, "finetune")
        summary = fit_logged(model, root / FINETUNE_LIVE, tensorboard, best, patience=None,
                             first_epoch=first_epoch, baseline=head_val_accuracy,
                             x=distribute.as_dataset(train_batches),
                             validation_data=distribute.as_dataset(val_batches),
                             epochs=first_epoch + p.epochs, shuffle=False)  # Batches shuffle
        model.load_weights(best)
    return summary, cache_bytes


def main() -> None:
    """Fine-tune from the saved extractor and head; save the full model of the best epoch."""
    params = load_params(FinetuneStageParams)
    x_train = load_split(PREPARED, "train")[0]
    p = auto_params.resolved_finetune(params.finetune, len(x_train))
    strategy = distribute.strategy(p.strategy, "finetune.strategy")
    seed_everything(params.seed)
    head_summary = read_json(TRAIN_LIVE / "metrics.json")
    first_epoch = head_summary["epochs"]
    with strategy.scope():
        extractor = keras.models.load_model(EXTRACTOR)
        head = keras.models.load_model(HEAD)
    p = p.model_copy(update={"layers": auto_params.finetune_layers(
        p, x_train.shape[1], functools.partial(layers_above_stride, extractor))})
    cut = params.finetune.layers == "auto" and p.layers != "all"  # the recipe's cut chose them
    params, cache_bytes = params.model_copy(update={"finetune": p}), 0
    with distribute.output_root(strategy) as root:
        if p.layers and p.epochs:
            with strategy.scope():
                extractor = in_precision(extractor, p.precision)
                head = in_precision(head, p.precision)
            summary, cache_bytes = fine_tune(extractor, head, params, strategy, root,
                                             first_epoch, head_summary["best_val_accuracy"])
            print(f"finetune: {strategy.num_replicas_in_sync} replicas, best val_accuracy "
                  f"{summary['best_val_accuracy']:.4f} at epoch {summary['best_epoch']}"
                  + ("" if summary["improved"] else
                     f", not above the head's {head_summary['best_val_accuracy']:.4f}: the head "
                     "on the frozen base is kept"))
        else:
            (root / FINETUNE_LIVE / "plots" / "metrics").mkdir(parents=True, exist_ok=True)
            write_json(root / FINETUNE_LIVE / "metrics.json",
                       {"epochs": first_epoch, "skipped": True})
            print("finetune: skipped (finetune.layers or finetune.epochs is 0)")
        final = in_precision(keras.Model(extractor.input, head(extractor.output),
                                         name="classifier"), "float32")
        save_model(final, root / FINETUNED)
        write_resolved("finetune", {"finetune": p}, root=root, how={
            "cached_stride": recipe.CACHED_STRIDE if cut else None, "cache_bytes": cache_bytes})


if __name__ == "__main__":
    run_stage(main, STAGE_TIMES / "finetune.json")
