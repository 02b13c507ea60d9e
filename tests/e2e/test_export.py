"""The exported model: `.h5` round trip, preprocess_data contract, train/serve consistency."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from conftest import hand_built_features, run_stages, tiny_params, write_params

from transfer import preprocess_data
from transfer.models.calibration import tempered
from transfer.models.saving import save_model
from transfer.runtime.files import read_json

# ResNet50: "caffe" preprocessing, the one with a channel swap; every family's preprocessing is
# checked against keras.applications in test_backbones (DenseNet121 and ResNet50V2 here took
# 2.5 minutes of CI for no other check).
BACKBONE = "ResNet50"


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory, cifar_like_folder) -> Path:
    """A project run from fetch to finetune once (ResNet50 at 40 px, its top 3 layers tuned);
    each test copies it and runs `evaluate` with its own `evaluate.flip`."""
    root = tmp_path_factory.mktemp("fine-tuned")
    with contextlib.chdir(root):
        write_params(root, **tiny_params(
            cifar_like_folder, data={"image_size": 32, "val_split": 0.2},
            model={"backbone": BACKBONE, "input_size": 40}, finetune={"layers": 3}))
        run_stages("fetch", "features", "train", "finetune")
    return root


def evaluated(run: Path, workdir: Path, flip: bool, calibrate: bool) -> None:
    """`run` copied into `workdir`, then its `evaluate` stage with `evaluate.flip` and
    `evaluate.calibrate` as given."""
    shutil.copytree(run, workdir, dirs_exist_ok=True)
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["evaluate"].update(flip=flip, calibrate=calibrate)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_stages("evaluate")


def test_h5_round_trip_and_consistency(workdir, fine_tuned):
    """cifar10.h5, tempered, evaluates like the pipeline's metrics (its loss is the calibrated
    NLL); its base matches the cached features and a hand-built
    `base(preprocess_input(resize(x)))`."""
    evaluated(fine_tuned, workdir, flip=False, calibrate=True)  # one path (flips: below)
    x_test, y_test = np.load("data/prepared/test_x.npy"), np.load("data/prepared/test_y.npy")

    X_p, Y_p = preprocess_data(x_test, y_test)
    model = keras.models.load_model("models/cifar10.h5")
    loss, accuracy = model.evaluate(X_p, Y_p, batch_size=128, verbose=0)
    metrics = read_json("metrics/evaluate.json")["finetuned"]
    assert accuracy == pytest.approx(metrics["accuracy"])
    assert loss == pytest.approx(metrics["calibration"]["nll_calibrated"], rel=1e-4)
    assert metrics["calibration"]["temperature"] != pytest.approx(1.0, abs=1e-3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        native = keras.models.load_model("models/model.keras")
    assert [str(w.message) for w in caught] == [], "loading the exported model warns"
    np.testing.assert_allclose(model.predict(X_p, verbose=0), native.predict(X_p, verbose=0),
                               rtol=1e-5, atol=1e-6)

    base = keras.Model(model.input, model.get_layer("head_logits").input)
    exported = base.predict(X_p, verbose=0)
    assert exported.std() > 1e-4, "degenerate features: the comparison would prove nothing"
    np.testing.assert_allclose(exported, hand_built_features(model, BACKBONE, 40, x_test),
                               rtol=1e-4, atol=1e-4 * np.abs(exported).max())
    extractor = keras.models.load_model("models/extractor.keras")  # the base before fine-tuning
    assert_features_equal(np.load("features/test_x.npy"), extractor.predict(X_p, verbose=0))


def assert_features_equal(cached: np.ndarray, computed: np.ndarray) -> None:
    """Cached float16 features equal freshly computed ones up to float16 rounding."""
    cached = cached.astype(np.float32)
    np.testing.assert_allclose(cached, computed, rtol=2e-3, atol=1e-3 * np.abs(cached).max())


def test_h5_without_finetuning_serves_the_cached_features(workdir, cifar_like_folder):
    """With finetune.layers=0 the exported base computes exactly the cached features, and a
    plain Python with only Keras (no custom objects) loads and runs cifar10.h5."""
    write_params(workdir, **tiny_params(cifar_like_folder, data={"image_size": 32},
                                        model={"backbone": "ResNet50", "input_size": 40},
                                        finetune={"layers": 0},
                                        evaluate={"flip": False, "calibrate": False}))
    run_stages("fetch", "features", "train", "finetune", "evaluate")
    x_test, y_test = preprocess_data(np.load("data/prepared/test_x.npy"),
                                     np.load("data/prepared/test_y.npy"))
    model = keras.models.load_model("models/cifar10.h5")
    base = keras.Model(model.input, model.get_layer("head").input)
    assert_features_equal(np.load("features/test_x.npy"), base.predict(x_test, verbose=0))
    code = ("import keras, numpy as np; m = keras.models.load_model('models/cifar10.h5'); "
            "print(m.predict(np.zeros((1, 32, 32, 3)), verbose=0).shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().endswith("(1, 10)")


def test_flip_averaging_in_the_exported_model(workdir, fine_tuned):
    """With evaluate.flip, cifar10.h5 and model.keras give the mean of the fine-tuned model's
    probabilities on each image and its mirror, the pipeline's metrics are theirs, and a plain
    Python with only Keras loads the .h5; the fine-tuned model's own scores, without flips,
    are recorded beside them; with evaluate.calibrate too, they give that mean
    tempered by the fitted temperature, the same classes."""
    evaluated(fine_tuned, workdir, flip=True, calibrate=False)
    x_test, y_test = preprocess_data(np.load("data/prepared/test_x.npy"),
                                     np.load("data/prepared/test_y.npy"))
    tuned = keras.models.load_model("models/finetuned.keras")
    expected = (tuned.predict(x_test, verbose=0) + tuned.predict(x_test[:, :, ::-1], verbose=0)) / 2
    assert np.abs(expected - tuned.predict(x_test, verbose=0)).max() > 1e-4  # flips matter here
    for path in ("models/cifar10.h5", "models/model.keras"):
        model = keras.models.load_model(path)
        np.testing.assert_allclose(model.predict(x_test, verbose=0), expected, rtol=1e-5,
                                   atol=1e-6)
    loss, accuracy = keras.models.load_model("models/cifar10.h5").evaluate(
        x_test, y_test, batch_size=128, verbose=0)
    tested = read_json("metrics/evaluate.json")
    assert accuracy == pytest.approx(tested["finetuned"]["accuracy"])
    plain = tuned.predict(x_test, verbose=0).argmax(axis=1) == y_test.argmax(axis=1)
    assert tested["finetuned_unflipped"]["correct"] == plain.sum()  # fine-tuning without flips
    evaluated(fine_tuned, workdir, flip=True, calibrate=True)
    temperature = read_json("metrics/evaluate.json")["finetuned"]["calibration"]["temperature"]
    calibrated = keras.models.load_model("models/cifar10.h5").predict(x_test, verbose=0)
    np.testing.assert_allclose(calibrated, tempered(expected, temperature), rtol=1e-4, atol=1e-6)
    assert (calibrated.argmax(axis=1) == expected.argmax(axis=1)).all()
    code = ("import keras, numpy as np; m = keras.models.load_model('models/cifar10.h5'); "
            "print(m.predict(np.zeros((1, 32, 32, 3)), verbose=0).shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip().endswith("(1, 10)")


def test_the_same_model_saved_twice_gives_the_same_bytes(tmp_path):
    """Keras stamps the save time in a `.keras` file and numbers shared objects by address;
    `save_model` pins both, so the same model built and saved again seconds later gives the
    same bytes (and DVC no rerun), and loads back unchanged."""
    for run in (1, 2):
        time.sleep(2.1 * (run - 1))  # the zip format counts time in steps of 2 s
        keras.backend.clear_session()  # as in a new process: the same layer names
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(),
                                  keras.layers.Dense(3)])
        model.save(tmp_path / f"plain{run}.keras")
        save_model(model, tmp_path / f"pinned{run}.keras")
    file = {path.stem: path.read_bytes() for path in tmp_path.glob("*.keras")}
    assert file["plain1"] != file["plain2"]  # Keras's own files show the clock
    assert file["pinned1"] == file["pinned2"]
    loaded = keras.models.load_model(tmp_path / "pinned2.keras")
    for saved, kept in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, kept)
