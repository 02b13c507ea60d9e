"""The recipe's rules: what each `auto` param becomes for the data at hand.

The defaults were tuned on CIFAR-10 (32 px thumbnails, 45,000 training images) and fail on
photos and on small datasets (bench/results/tuning.md, "Photos"). Each rule below gives CIFAR-10 its
tuned value and scales to the data; an explicit value in params.yaml always wins.

- Input size: photos at the size the backbone was trained on; thumbnails upscaled THUMBNAIL_SCALE
  times (CIFAR-10's 32 px -> 128 px, chosen on validation), never above the native size.
- Batches: enough steps per epoch on a small dataset (at least STEPS_PER_EPOCH when the batch
  can shrink to MIN_BATCH), at most HEAD_BATCH for the head and BATCH for fine-tuning, whose
  learning rate follows the batch linearly (Goyal et al., 2017) from BASE_LEARNING_RATE at BATCH.
- Augmentation: photos also get random rotation and zoom (PHOTO_AUGMENT); thumbnails flips only.
- Fine-tuned layers: photos the whole base; thumbnails (flips only) the layers above the
  smallest activation at CACHED_STRIDE, whose frozen bottom then runs once into the activation
  cache (`transfer.training.activation_cache`).
- Validation: at least `data.val_min` images per class (see `transfer.data.splits.top_up`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transfer.params.training import FinetuneParams, TrainParams

THUMBNAIL_SCALE, MIN_INPUT = 4, 32
THUMBNAIL_MAX = 64  # stored sides up to this are thumbnails, larger ones photos
BATCH, HEAD_BATCH, MIN_BATCH, STEPS_PER_EPOCH = 128, 256, 16, 50
BASE_LEARNING_RATE = 1e-3  # AdamW's peak at BATCH, the whole base fine-tuned (CIFAR-10)
PHOTO_AUGMENT = 0.1  # rotation (share of a full turn) and zoom for photos
CACHED_STRIDE = 16  # thumbnails: the base's layers up to this stride frozen and cached


def input_size(native: int, image_side: int | None) -> int:
    """The model's input size for images whose (median) shorter side is `image_side` (None:
    unknown, the backbone's `native` size): at least MIN_INPUT (what `model.input_size`
    allows)."""
    if image_side is None:
        return native
    return min(native, max(MIN_INPUT, THUMBNAIL_SCALE * image_side))


def is_photo(image_side: int) -> bool:
    """True for images larger than thumbnails."""
    return image_side > THUMBNAIL_MAX


def batch_size(n_train: int, largest: int = BATCH) -> int:
    """The batch: `largest`, halved (down to MIN_BATCH) until `n_train` images make
    STEPS_PER_EPOCH steps."""
    batch = largest
    while batch > MIN_BATCH and n_train < batch * STEPS_PER_EPOCH:
        batch //= 2
    return batch


def learning_rate(batch: int) -> float:
    """The fine-tuning learning rate for a batch of `batch` images (linear scaling)."""
    return BASE_LEARNING_RATE * batch / BATCH


def augment_factor(image_side: int) -> float:
    """Random rotation and zoom for fine-tuning: PHOTO_AUGMENT for photos, none for thumbnails."""
    return PHOTO_AUGMENT if is_photo(image_side) else 0.0


def resolved_train(p: TrainParams, n_train: int) -> TrainParams:
    """`p` with an `auto` batch size replaced by the rule's for `n_train` training images."""
    return p if p.batch_size != "auto" else p.model_copy(
        update={"batch_size": batch_size(n_train, HEAD_BATCH)})


def resolved_finetune(p: FinetuneParams, n_train: int, image_side: int) -> FinetuneParams:
    """`p` with each `auto` replaced by the rule's value for `n_train` training images stored
    at `image_side` pixels."""
    batch = batch_size(n_train) if p.batch_size == "auto" else p.batch_size
    factor = augment_factor(image_side)
    augment = p.augment.model_copy(update={
        name: factor for name in ("rotation", "zoom") if getattr(p.augment, name) == "auto"})
    return p.model_copy(update={
        "batch_size": batch, "augment": augment,
        "learning_rate": learning_rate(batch) if p.learning_rate == "auto" else p.learning_rate})


def finetune_layers(p: FinetuneParams, image_side: int,
                    layers_above_stride: Callable[[int], int | None]) -> int | str:
    """`p.layers`, or for `auto`: on thumbnails whose augmentation the activation cache can
    serve (flips only, one input size), `layers_above_stride(CACHED_STRIDE)` (the base's layers
    above its smallest activation at that stride, `transfer.training.activation_cache`); else
    (photos, and bases without that stride) all of them."""
    if p.layers != "auto":
        return p.layers
    cacheable = p.cacheable and not is_photo(image_side)
    layers = layers_above_stride(CACHED_STRIDE) if cacheable else None
    return "all" if layers is None else layers
