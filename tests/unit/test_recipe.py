"""The recipe's rules: `auto` params resolved from the data, CIFAR-10 kept at its tuned values,
explicit params winning."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, make_image_folder, run_stages, tiny_params, write_params
from PIL import Image

from transfer import fetch
from transfer.params.training import AugmentParams, FinetuneParams, TrainParams
from transfer.runtime.files import read_json
from transfer.runtime.paths import RESOLVED
from transfer.training import auto_params, recipe

PREPARED = Path("data/prepared")


def photos(root: Path, classes: list[str], n_train: int, n_test: int,
           size: tuple[int, int] = (400, 300)) -> Path:
    """A generated image folder whose images are resized to photo size (w, h)."""
    folder = make_image_folder(root, classes, n_train, n_test)
    for path in folder.rglob("*.png"):
        Image.open(path).resize(size).save(path)
    return folder


def fetched(workdir: Path, folder: Path, model: dict | None = None, **data: object) -> dict:
    """Run `fetch` on `folder` with tiny params (without their explicit input size unless
    `model` gives one); dataset.json, the input size fetch resolved and the per-class counts of
    each split."""
    params = tiny_params(folder, data=data)
    params["model"] = {"backbone": "EfficientNetLite0", "input_size": "auto", **(model or {})}
    params["data"]["image_size"] = None
    write_params(workdir, **params)
    fetch.main()
    counts = {split: np.bincount(np.load(PREPARED / f"{split}_y.npy")).tolist()
              for split in ("train", "val", "test")}
    input_size = read_json(RESOLVED / "fetch.json")["params"]["model"]["input_size"]
    return {**read_json(PREPARED / "dataset.json"), "input_size": input_size, "counts": counts}


def test_auto_input_size_for_thumbnails_and_photos(workdir, tmp_path):
    """32 px thumbnails: 4 x 32 = 128 for the model, stored at 32; 400x300 photos: the
    backbone's own size (Lite0 224, Lite2 260, InceptionV3 299), stored at their 300 px side
    when that is smaller; an explicit model.input_size wins."""
    thumbs = make_image_folder(tmp_path / "thumbs", ["a", "b"], 3, 1, size=32)
    shots = photos(tmp_path / "photos", ["a", "b"], 3, 1)
    for folder, model, input_size, stored in (
            (thumbs, {}, 128, 32), (shots, {}, 224, 224),
            (shots, {"backbone": "EfficientNetLite2"}, 260, 260),
            (shots, {"backbone": "InceptionV3"}, 299, 299),
            (thumbs, {"input_size": 64}, 64, 32), (shots, {"input_size": 128}, 128, 128)):
        described = fetched(workdir, folder, model, val_min=0)
        assert (described["input_size"], described["image_size"]) == (input_size, stored), model
        assert np.load(PREPARED / "train_x.npy").shape[1] == stored


def test_validation_gets_its_minimum_per_class_from_images_not_used(workdir, tmp_path):
    """data.fraction=0.1 of 40 images per class trains on 4 and validates on data.val_min=10
    per class, taken from the 36 left out; the training images stay as they were; with
    val_min 0 the old split (10% of the 4) is kept."""
    folder = make_image_folder(tmp_path / "ds", ["a", "b", "c"], 40, 2)
    old = fetched(workdir, folder, fraction=0.1, val_split=0.25, val_min=0)
    old_train = np.load(PREPARED / "train_x.npy")
    new = fetched(workdir, folder, fraction=0.1, val_split=0.25, val_min=10)
    assert old["counts"]["train"] == new["counts"]["train"] == [3, 3, 3]
    assert old["counts"]["val"] == [1, 1, 1] and new["counts"]["val"] == [10, 10, 10]
    np.testing.assert_array_equal(np.load(PREPARED / "train_x.npy"), old_train)
    assert new["val_topped_up"] and not old["val_topped_up"]


def test_validation_minimum_leaves_half_of_a_small_class_for_training(workdir, tmp_path):
    """With every image in use (fraction 1), the minimum is reached by moving training images
    only while half of each class's training images stay."""
    folder = make_image_folder(tmp_path / "ds", ["a", "b"], 12, 2)
    counts = fetched(workdir, folder, val_split=0.25, val_min=10)["counts"]
    assert counts["train"] == [5, 5] and counts["val"] == [7, 7]


@pytest.mark.parametrize(("n_train", "batch", "rate"), [
    (45_000, 128, 1e-3), (6_750, 128, 1e-3), (3_200, 64, 5e-4), (1_350, 16, 1.25e-4),
    (670, 16, 1.25e-4), (70, 16, 1.25e-4)])
def test_small_data_gets_smaller_batches_and_a_lower_rate(n_train, batch, rate):
    """The fine-tuning batch halves (to 16 at least) until an epoch has 50 steps, the learning
    rate follows it linearly; 5 epochs of 670 images are 210 steps, not the 30 of batch 128."""
    p = auto_params.resolved_finetune(FinetuneParams(), n_train)
    assert (p.batch_size, p.learning_rate) == (batch, pytest.approx(rate))
    if n_train == 670:
        assert p.epochs * -(-n_train // p.batch_size) == 210


def test_cifar10_keeps_its_tuned_recipe():
    """32 px images, 45,000 of them: 128 px input, batch 128, learning rate 1e-3, flips only,
    exactly the explicit values validation chose for CIFAR-10."""
    assert recipe.input_size(224, 32) == 128
    assert recipe.input_size(224, 8) == 32  # the smallest input allowed
    tuned = FinetuneParams(batch_size=128, learning_rate=1e-3)
    assert auto_params.resolved_finetune(FinetuneParams(), 45_000) == tuned
    assert tuned.augment.flip and tuned.augment.cacheable


def test_explicit_values_win():
    """Any explicit batch size, rate or augmentation is kept as written; an `auto` rate
    follows an explicit batch."""
    mine = FinetuneParams(batch_size=32, learning_rate=3e-4,
                          augment=AugmentParams(rotation=0.0, zoom=0.2))
    assert auto_params.resolved_finetune(mine, 1_000) == mine
    half = mine.model_copy(update={"learning_rate": "auto"})
    assert auto_params.resolved_finetune(half, 1_000).learning_rate == pytest.approx(2.5e-4)


def test_thumbnails_fine_tune_the_base_above_the_cached_stride():
    """`finetune.layers: auto` on thumbnails with flips only: the layers above the smallest
    activation at CACHED_STRIDE; photos, other augmentation and a base without that stride:
    all of them; an explicit value wins."""
    asked = []

    def above(stride: int) -> int | None:
        """78 layers above stride 16 (as for EfficientNetLite0), none elsewhere."""
        asked.append(stride)
        return 78 if stride == 16 else None

    thumbs = auto_params.resolved_finetune(FinetuneParams(), 45_000)
    assert auto_params.finetune_layers(thumbs, 32, above) == 78
    assert asked == [recipe.CACHED_STRIDE] == [16]
    photo = auto_params.resolved_finetune(FinetuneParams(), 1_000)
    assert auto_params.finetune_layers(photo, 224, above) == "all"
    rotated = thumbs.model_copy(update={"augment": AugmentParams(rotation=0.1)})
    assert auto_params.finetune_layers(rotated, 32, above) == "all"
    assert auto_params.finetune_layers(thumbs, 32, lambda stride: None) == "all"
    for mine in ("all", 20, 0):
        assert auto_params.finetune_layers(thumbs.model_copy(update={"layers": mine}), 32,
                                      above) == mine


@pytest.mark.parametrize(("n_train", "batch"), [(45_000, 256), (6_750, 128), (1_350, 16),
                                                (135, 16)])
def test_the_head_gets_enough_steps(n_train, batch):
    """The head's batch halves from 256 (CIFAR-10's) until an epoch has 50 steps, down to 16;
    an explicit batch size wins."""
    assert auto_params.resolved_train(TrainParams(), n_train).batch_size == batch
    assert auto_params.resolved_train(TrainParams(batch_size=64), n_train).batch_size == 64


def test_the_paper_says_what_the_rules_gave(workdir, tiny_folder):
    """A run with the recipe's params left `auto` (16 px images, an input THUMBNAIL_SCALE times
    that) writes the input size, the batch sizes, the learning rate, the fine-tuned layers and
    the validation minimum it used into Methods; its table of the values used shows what each
    `auto` became, and the appendix's params.yaml shows `auto` as written."""
    params = tiny_params(tiny_folder, data={"val_min": 4}, model={"input_size": "auto"},
                         train={"batch_size": "auto"},
                         finetune={"layers": "auto", "batch_size": "auto",
                                   "learning_rate": "auto"})
    write_params(workdir, **params)
    shutil.copytree(ROOT / "report/templates", workdir / "report/templates")
    run_stages("fetch", "features", "audit", "train", "finetune", "evaluate", "report")
    paper = (workdir / "report/paper.md").read_text()
    methods = paper.split("## Materials and Methods")[1].split("## Results")[0]
    size = 16 * recipe.THUMBNAIL_SCALE
    assert f"resized to {size}×{size} inside the model" in methods
    assert (f"images of median shorter side 16 px: {recipe.THUMBNAIL_SCALE} times that side"
            in methods)
    assert "topped up to 4 images per class" in methods
    assert "batch size 16, which with the peak learning rate follows the recipe's rule" in methods
    assert "rose linearly from 0 to 0.000125" in methods
    assert "(learning rate 0.001, batch size 16)" in methods  # the head
    table = methods.split("*Table 1.")[1].split("###")[0]
    assert "auto" not in table.split("\n\n", 1)[1] and f"input_size {size}" in table
    assert "| finetune | layers 64, epochs 1, batch_size 16, learning_rate 0.000125," in table
    assert "  input_size: auto" in paper.split("### A. Parameters")[1]
    # MobileNetV2: 64 layers above its smallest activation at stride 16
    assert "The top 64 layers of the base, except BatchNormalization layers, were" in methods
    assert "the base's smallest activation at stride 16" in methods
    ran = read_json(RESOLVED / "finetune.json")
    assert (ran["params"]["finetune"]["batch_size"], ran["params"]["finetune"]["layers"]) == \
        (16, 64)
    assert ran["how"]["cached_stride"] == 16
