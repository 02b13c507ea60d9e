"""The recipe's rules (`training.recipe`) applied to the `train` and `finetune` params: each
`auto` replaced by the value its rule gives for the data at hand."""

from __future__ import annotations

from collections.abc import Callable

from transfer.params.training import FinetuneParams, TrainParams
from transfer.training import recipe


def resolved_train(p: TrainParams, n_train: int) -> TrainParams:
    """`p` with an `auto` batch size replaced by the rule's for `n_train` training images."""
    return p if p.batch_size != "auto" else p.model_copy(
        update={"batch_size": recipe.batch_size(n_train, recipe.HEAD_BATCH)})


def resolved_finetune(p: FinetuneParams, n_train: int) -> FinetuneParams:
    """`p` with an `auto` batch size and learning rate replaced by the rules' values for
    `n_train` training images."""
    batch = recipe.batch_size(n_train) if p.batch_size == "auto" else p.batch_size
    return p.model_copy(update={
        "batch_size": batch,
        "learning_rate": (recipe.learning_rate(batch) if p.learning_rate == "auto"
                          else p.learning_rate)})


def finetune_layers(p: FinetuneParams, image_side: int,
                    layers_above_stride: Callable[[int], int | None]) -> int | str:
    """`p.layers`, or for `auto`: on thumbnails whose augmentation the activation cache can
    serve (no rotation or zoom, one input size), `layers_above_stride(CACHED_STRIDE)` (the
    base's layers above its smallest activation at that stride,
    `transfer.training.activation_cache`); else (photos, and bases without that stride) all of
    them."""
    if p.layers != "auto":
        return p.layers
    cacheable = p.augment.cacheable and not recipe.is_photo(image_side)
    layers = layers_above_stride(recipe.CACHED_STRIDE) if cacheable else None
    return "all" if layers is None else layers
