"""Without a network: a download that fails is one line naming the offline way, exit code 2,
and nothing left behind; the offline route (an image folder, EfficientNetLite0) needs none."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from conftest import ROOT, run_stages, tiny_params, write_params

from transfer.runtime.files import read_json


def offline_stage(stage: str, keras_home) -> subprocess.CompletedProcess:
    """Run `python -m transfer.<stage>` with every HTTP(S) request refused (a proxy on a
    closed local port) and an empty Keras cache, so nothing can be found or fetched."""
    env = {**os.environ, "KERAS_HOME": str(keras_home), "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": str(ROOT / "src"), "https_proxy": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "no_proxy": ""}
    return subprocess.run([sys.executable, "-m", f"transfer.{stage}"], env=env,
                          capture_output=True, text=True, timeout=300)


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    """The lines of stderr that the stage itself wrote as errors."""
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_cifar10_download_failure_names_the_folder_source(workdir, tmp_path):
    """`data.source: cifar10` offline: one error line naming data.source=folder; no data/."""
    write_params(workdir)
    result = offline_stage("fetch", tmp_path / "keras")
    assert result.returncode == 2, result.stderr
    [line] = error_lines(result)
    assert line.startswith("error: cannot download CIFAR-10") and "data.source=folder" in line
    assert "Traceback" not in result.stderr
    assert not (workdir / "data").exists()


def test_weights_download_failure_names_efficientnet_lite(workdir, tmp_path, tiny_folder):
    """ImageNet weights of a keras.applications model offline: one error line naming
    EfficientNetLite0; no features/ and no models/."""
    write_params(workdir, **tiny_params(tiny_folder, model={"backbone": "MobileNetV2",
                                                            "weights": "imagenet"}))
    run_stages("fetch")
    result = offline_stage("features", tmp_path / "keras")
    assert result.returncode == 2, result.stderr
    [line] = error_lines(result)
    assert "ImageNet weights of MobileNetV2" in line
    assert "model.backbone=EfficientNetLite0" in line
    assert not (workdir / "features").exists() and not (workdir / "models").exists()


def test_offline_route_runs_with_real_weights(workdir, tmp_path, tiny_folder):
    """An image folder with EfficientNetLite0's ImageNet weights extracts features offline."""
    write_params(workdir, **tiny_params(tiny_folder, model={"backbone": "EfficientNetLite0",
                                                            "weights": "imagenet"}))
    run_stages("fetch")
    result = offline_stage("features", tmp_path / "keras")
    assert result.returncode == 0, result.stderr
    assert read_json("metrics/features.json")["feature_dim"] == 1280
    assert np.load("features/train_x.npy").std() > 0
