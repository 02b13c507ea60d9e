"""Fine-tuning: frozen weights and BatchNorm statistics stay bit-identical; the top learns."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import run_stages, tiny_params, write_params

from transfer.activation_cache import DiskRows
from transfer.backbones import backbone_layers
from transfer.batches import Batches
from transfer.runtime import read_json


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


def test_cached_batches_read_every_sample_once_and_flip_about_half(tmp_path):
    """Batches over DiskRows: each epoch is a permutation, each row unflipped or flipped."""
    rows = np.arange(200 * 6, dtype=np.float32).reshape(200, 2, 3)
    x, flipped = DiskRows(tmp_path / "x", rows.shape), DiskRows(tmp_path / "f", rows.shape)
    for start in range(0, 200, 64):
        x[start:start + 64] = rows[start:start + 64]
        flipped[start:start + 64] = -rows[start:start + 64]
    np.testing.assert_array_equal(x[np.array([7, 3, 199])], rows[[7, 3, 199]])
    batches = Batches(x, np.arange(200), 32, seed=0, flipped=flipped)
    for _ in range(2):
        seen = [batches[i] for i in range(len(batches))]
        labels = np.concatenate([y for _, y in seen])
        values = np.concatenate([b for b, _ in seen])
        assert sorted(labels) == list(range(200))
        np.testing.assert_array_equal(np.abs(values), rows[labels])
        assert 60 < (values.reshape(200, -1)[:, 1] < 0).sum() < 140
        batches.on_epoch_end()
