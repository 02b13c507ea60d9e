"""Inference engines: OpenVINO computes what Keras computes, and a missing engine falls back."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import PHOTOS, photos, run_stages, tiny_params, write_params

from transfer.models import engines
from transfer.models.backbones import build_extractor
from transfer.models.efficientnet_lite import lite
from transfer.runtime.files import read_json


def assert_engines_agree(model, images: np.ndarray) -> np.ndarray:
    """OpenVINO's output on `images` is Keras's within engines.TOLERANCE, and the same bytes
    from a second conversion; returns Keras's output."""
    expected = model.predict_on_batch(images)
    actual = engines.runner(model, "openvino")(images)
    assert actual.shape == expected.shape and np.abs(expected).max() > 1e-3
    error = np.abs(actual - expected).max() / np.abs(expected).max()
    print(f"{model.name}: OpenVINO vs Keras, max error {error:.2e} of the largest output")
    assert error <= engines.TOLERANCE
    np.testing.assert_array_equal(engines.runner(model, "openvino")(images), actual)
    return expected


def test_openvino_equals_keras_with_real_imagenet_weights():
    """EfficientNetLite0 with its ImageNet weights: the pipeline's extractor (64 px photos
    resized to 96 inside) and the 1000-class model on 224 px photos, whose top-3 classes are
    Keras's, in order, and hold a right one for every photo."""
    pixels = np.concatenate([photos(64), np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3))
                             ]).astype(np.float32)
    assert_engines_agree(build_extractor("EfficientNetLite0", "imagenet", 96, 64), pixels)
    classifier = lite(0)
    probs = assert_engines_agree(classifier, photos(224))
    top3 = np.argsort(-engines.runner(classifier, "openvino")(photos(224)), axis=1)[:, :3]
    np.testing.assert_array_equal(top3, np.argsort(-probs, axis=1)[:, :3])
    assert all(set(top) & right for top, right in zip(top3, PHOTOS.values()))


def test_openvino_equals_keras_on_another_family():
    """ResNet50 (random weights), with its "caffe" preprocessing layer and a Resizing layer."""
    pixels = np.random.default_rng(1).uniform(0, 255, (8, 24, 24, 3)).astype(np.float32)
    assert_engines_agree(build_extractor("ResNet50", "none", 32, 24), pixels)


def test_auto_takes_openvino_for_many_images_on_a_cpu(capsys):
    """auto: OpenVINO from AUTO_MIN_IMAGES images of a float32 model on a machine without a
    GPU, else Keras; an explicit engine is taken as it is, silently, except OpenVINO for a
    model in mixed precision: Keras, with one line."""
    many = engines.AUTO_MIN_IMAGES
    assert engines.choose("auto", many - 1) == "keras"
    assert engines.choose("keras", many) == "keras"
    assert engines.choose("openvino", 1) == "openvino"
    assert engines.choose("auto", many, "mixed_bfloat16") == "keras"
    if not tf.config.list_physical_devices("GPU"):
        assert engines.choose("auto", many) == "openvino"
    assert capsys.readouterr().err == ""
    assert engines.choose("openvino", many, "mixed_bfloat16") == "keras"
    assert "OpenVINO runs float32 models here" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["openvino", "auto"])
def test_missing_openvino_falls_back_to_keras_with_one_line(engine, monkeypatch, capsys):
    """Without the openvino package, asking for it gives Keras and one line on stderr."""
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` now fails
    if engine == "auto" and tf.config.list_physical_devices("GPU"):
        pytest.skip("auto takes Keras on a GPU anyway")
    assert engines.choose(engine, engines.AUTO_MIN_IMAGES) == "keras"
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "OpenVINO is not installed (pip install openvino)" in err


def test_features_stage_on_openvino_records_it(workdir, tiny_folder, monkeypatch, capsys):
    """`features.engine: openvino` gives Keras's features within the tolerance (float16
    stored) and says so in metrics/features.json; with OpenVINO missing the stage runs on
    Keras, byte for byte what `features.engine: keras` writes."""
    def features(engine: str) -> tuple[np.ndarray, str]:
        write_params(workdir, **tiny_params(tiny_folder, features={"engine": engine}))
        run_stages("features")
        return np.load("features/test_x.npy"), read_json("metrics/features.json")["engine"]

    write_params(workdir, **tiny_params(tiny_folder))
    run_stages("fetch")
    keras_features, used = features("keras")
    assert used == "keras"
    openvino_features, used = features("openvino")
    assert used == "openvino"
    np.testing.assert_allclose(openvino_features.astype(np.float32), keras_features,
                               rtol=2e-3, atol=2e-3 * np.abs(keras_features).max())
    monkeypatch.setitem(sys.modules, "openvino", None)
    fallback, used = features("openvino")
    assert used == "keras" and "OpenVINO is not installed" in capsys.readouterr().err
    np.testing.assert_array_equal(fallback, keras_features)
