"""The recipe's rules: what each `auto` param becomes for the data at hand.

The defaults were tuned on CIFAR-10 (32 px thumbnails, 45,000 training images) and fail on
photos and on small datasets (bench/results/tuning.md, "Photos"). Each rule below gives CIFAR-10 its
tuned value and scales to the data; an explicit value in params.yaml always wins.
`transfer.training.auto_params` applies these rules to the `train` and `finetune` params.

- Input size: photos at the size the backbone was trained on; thumbnails upscaled THUMBNAIL_SCALE
  times (CIFAR-10's 32 px -> 128 px, chosen on validation), never above the native size.
- Batches: enough steps per epoch on a small dataset (at least STEPS_PER_EPOCH when the batch
  can shrink to MIN_BATCH), at most HEAD_BATCH for the head and BATCH for fine-tuning, whose
  learning rate follows the batch linearly (Goyal et al., 2017) from BASE_LEARNING_RATE at BATCH.
- Augmentation: flips alone (rotation and zoom on three photo sets, translated views on
  CIFAR-10: no gain, bench/results/tuning.md); `finetune.augment` turns rotation and zoom on.
- Fine-tuned layers: photos the whole base; thumbnails (flips only) the layers above the
  smallest activation at CACHED_STRIDE, whose frozen bottom then runs once into the activation
  cache (`transfer.training.activation_cache`).
- Validation: at least `data.val_min` images per class (see `transfer.data.splits.top_up`).
"""

from __future__ import annotations

THUMBNAIL_SCALE, MIN_INPUT = 4, 32
THUMBNAIL_MAX = 64  # stored sides up to this are thumbnails, larger ones photos
BATCH, HEAD_BATCH, MIN_BATCH, STEPS_PER_EPOCH = 128, 256, 16, 50
BASE_LEARNING_RATE = 1e-3  # AdamW's peak at BATCH, the whole base fine-tuned (CIFAR-10)
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

