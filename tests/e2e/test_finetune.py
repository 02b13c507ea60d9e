"""Fine-tuning: frozen weights and BatchNorm statistics stay bit-identical; the top learns."""

from __future__ import annotations

import csv

import keras
import numpy as np
import pytest
from conftest import run_stages, tiny_params, write_params

from transfer.finetune import loss
from transfer.models.unfreezing import backbone_layers
from transfer.runtime.files import read_json
from transfer.training.activation_cache import DiskRows, cache
from transfer.training.batches import Batches
from transfer.training.fitting import EPOCH_MODELS


@pytest.mark.parametrize("finetune", [
    # activation cache, flip drawn per epoch; float16 with loss scaling, XLA (float32 and no
    # XLA, the defaults, run end to end in test_pipeline)
    {"augment": {"flip": True}, "precision": "mixed_float16", "jit_compile": True},
    {"augment": {"flip": False, "rotation": 0.1}},  # images every step
], ids=["cached-float16-xla", "images"])
def test_only_the_unfrozen_top_changes(workdir, tiny_folder, finetune):
    """After fitting, every frozen weight and every BN statistic equals the extractor's."""
    write_params(workdir, **tiny_params(
        tiny_folder, model={"backbone": "EfficientNetLite0", "input_size": 32,
                            "weights": "imagenet"},
        # A weak head for fine-tuning to beat (else the head is kept, see below); real weights,
        # since random EfficientNet features at 32 px are too flat to learn from.
        train={"epochs": 1, "learning_rate": 1e-6},
        finetune={"layers": 20, "epochs": 2, "learning_rate": 0.01, **finetune}))
    run_stages("fetch", "features", "train", "finetune")
    before = keras.models.load_model("models/extractor.keras")
    after = keras.models.load_model("models/finetuned.keras")
    layers = backbone_layers(before)
    top = {layer.name for layer in layers[-20:]}
    changed = set()
    for layer in layers:
        if not layer.weights:
            continue
        old = layer.get_weights()
        new = after.get_layer(layer.name).get_weights()
        same = all(np.array_equal(a, b) for a, b in zip(old, new))
        if isinstance(layer, keras.layers.BatchNormalization) or layer.name not in top:
            assert same, f"{layer.name} changed but is frozen"
        elif not same:
            changed.add(layer.name)
    assert changed, "no unfrozen layer was updated"
    assert any(isinstance(before.get_layer(n), keras.layers.BatchNormalization) for n in top)
    summary = read_json("dvclive/finetune/metrics.json")
    assert summary["epochs"] == read_json("dvclive/train/metrics.json")["epochs"] + 2


def test_fine_tuning_that_does_not_beat_the_head_keeps_it(workdir, tiny_folder):
    """A fine-tuning whose best epoch is not above the head's validation accuracy (here a
    learning rate of 10 wrecks it) exports the head on the frozen base, unchanged."""
    write_params(workdir, **tiny_params(tiny_folder, finetune={
        "layers": "all", "epochs": 1, "learning_rate": 10.0, "warmup": 0.0}))
    run_stages("fetch", "features", "train", "finetune")
    assert read_json("dvclive/finetune/metrics.json")["improved"] is False
    final = keras.models.load_model("models/finetuned.keras")
    start = [*keras.models.load_model("models/extractor.keras").weights,
             *keras.models.load_model("models/head.keras").weights]
    assert len(start) == len(final.weights)
    for a, b in zip(start, final.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_zero_layers_skips_training_but_writes_outputs(workdir, tiny_folder):
    """finetune.layers=0 exports extractor + head unchanged and still writes its metrics."""
    write_params(workdir, **tiny_params(tiny_folder, finetune={"layers": 0}))
    run_stages("fetch", "features", "train", "finetune")
    final = keras.models.load_model("models/finetuned.keras")
    extractor = keras.models.load_model("models/extractor.keras")
    for a, b in zip(extractor.weights, final.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert read_json("dvclive/finetune/metrics.json")["skipped"] is True


def test_cached_batches_read_every_sample_once_from_a_view_drawn_per_epoch(tmp_path):
    """Batches over views on disk: each epoch is a permutation, each sample read from one of
    the views, each view drawn about equally often; two views reproduce the flip draws of
    the earlier image-or-mirror cache (u < 0.5: the mirror)."""
    rows = np.arange(300 * 6, dtype=np.float32).reshape(300, 2, 3) + 1
    views = [DiskRows(tmp_path / f"v{k}", rows.shape) for k in range(3)]
    for k, view in enumerate(views):
        for start in range(0, 300, 64):
            view[start:start + 64] = (k + 1) * rows[start:start + 64]
    np.testing.assert_array_equal(views[0][np.array([7, 3, 299])], rows[[7, 3, 299]])
    batches = Batches(views, np.arange(300), 32, seed=0)
    for _ in range(2):
        seen = [batches[i] for i in range(len(batches))]
        labels = np.concatenate([y for _, y in seen])
        values = np.concatenate([b for b, _ in seen])
        assert sorted(labels) == list(range(300))
        drawn = values[:, 0, 0] / rows[labels, 0, 0] - 1
        np.testing.assert_array_equal(values, (drawn + 1)[:, None, None] * rows[labels])
        assert all(70 < (drawn == k).sum() < 130 for k in range(3))
        batches.on_epoch_end()
    two = Batches(views[:2], np.arange(300), 32, seed=5)
    mirrored = np.random.default_rng(5)
    mirrored.permutation(300)
    np.testing.assert_array_equal(two.view == 1, mirrored.random(300) < 0.5)


def test_the_cache_holds_the_images_and_their_mirrors(tmp_path):
    """With flips the cache's second view is each training image mirrored left to right."""
    x = np.random.default_rng(0).integers(0, 256, (40, 12, 8, 3)).astype(np.float32)
    plain, mirror = (cache(lambda b: b, x.shape[1:], x, 16, tmp_path, f"v{k}", mirror=k == 1)
                     for k in range(2))
    np.testing.assert_array_equal(plain[np.arange(40)], x)
    np.testing.assert_array_equal(mirror[np.arange(40)], x[:, :, ::-1])


def test_smoothed_loss_is_crossentropy_against_smoothed_labels():
    """Label smoothing s: the target is (1 - s) one-hot + s / classes."""
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=np.float32)
    labels = np.array([0, 1])
    target = 0.9 * np.eye(3)[labels] + 0.1 / 3
    expected = -(target * np.log(probs)).sum(axis=1).mean()
    assert np.mean(loss(3, 0.1)(labels, probs)) == pytest.approx(expected, rel=1e-5)
    assert np.mean(loss(3, 0.0)(labels, probs)) == pytest.approx(
        -np.log(probs[[0, 1], labels]).mean(), rel=1e-5)


def test_augmented_images_end_to_end_with_every_epoch_kept(workdir, tiny_folder, monkeypatch):
    """With rotation and zoom (the whole base on images) and label smoothing the stage saves a
    model that resizes to model.input_size; TRANSFER_EPOCH_MODELS keeps each fine-tuning
    epoch's model."""
    monkeypatch.setenv(EPOCH_MODELS, str(workdir / "epochs"))
    write_params(workdir, **tiny_params(
        tiny_folder, model={"input_size": 48},
        finetune={"layers": "all", "epochs": 2, "label_smoothing": 0.1,
                  "augment": {"rotation": 0.1, "zoom": 0.1}}))
    run_stages("fetch", "features", "train", "finetune")
    final = keras.models.load_model("models/finetuned.keras")
    assert final.input.shape[1:] == (16, 16, 3)
    assert final.get_layer("resize").output.shape[1:3] == (48, 48)
    kept = sorted(p.name for p in (workdir / "epochs/finetune").iterdir())
    first = read_json("dvclive/train/metrics.json")["epochs"]
    assert kept == [f"epoch-{first + 1:02d}.keras", f"epoch-{first + 2:02d}.keras"]
    epoch = keras.models.load_model(workdir / "epochs/finetune" / kept[-1], compile=False)
    assert epoch.input.shape[1:] == (16, 16, 3)
    assert (workdir / "epochs/train").is_dir()
    for stage in ("train", "finetune"):  # the summary's best epoch is the one Keras printed
        with open(f"dvclive/{stage}/plots/metrics/eval/accuracy.tsv") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        best = max(rows, key=lambda row: float(row["accuracy"]))
        assert read_json(f"dvclive/{stage}/metrics.json")["best_epoch"] == int(best["step"]) + 1
