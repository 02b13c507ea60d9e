"""Scaling out on one CPU: the CPU split into two logical devices (`mirrored`) and two worker
processes on localhost ports (`multiworker`) train the same models as one device, and two
feature shards extracted at once and merged equal the features of one process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import ROOT, run_stages, tiny_params, write_params

from transfer.feature_shards import arguments
from transfer.feature_shards import main as features_main
from transfer.runtime.errors import UserError
from transfer.runtime.files import read_json
from transfer.training import distribute

pytestmark = pytest.mark.slow
PER_REPLICA_BATCH = 4
# A stage in a fresh interpreter, as under DVC; "split" first makes two logical CPUs, as a
# machine with two GPUs has two devices.
STAGE = """
import importlib, sys
import tensorflow as tf
if sys.argv[2] == "split":
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
importlib.import_module(f"transfer.{sys.argv[1]}").main()
"""
# Random-weight ResNet50 features are far from zero (MobileNetV2's vanish): the gradients are
# real, so Adam's steps do not amplify rounding differences into different weights.
MODEL = {"model": {"backbone": "ResNet50", "input_size": 32}}
# Close enough for float32 sums taken in another order, far below what one step changes:
# absolutely, and relatively for large values (losses are about 10 with random features).
TOLERANCE = 1e-4
RELATIVE_TOLERANCE = 1e-3


def run_features(argv: list[str]) -> None:
    """`python -m transfer.features ARGV`, in this process."""
    features_main(arguments(argv))


def params(strategy: str, per_replica_batch: int) -> dict:
    """Train and fine-tune under `strategy`, without dropout (its masks are drawn per replica)."""
    return {"train": {"strategy": strategy, "batch_size": per_replica_batch, "dropout": 0.0,
                      "epochs": 3, "learning_rate": 0.01},
            "finetune": {"strategy": strategy, "batch_size": per_replica_batch, "epochs": 2,
                         "learning_rate": 1e-5}}


@pytest.fixture(scope="module")
def features(tmp_path_factory, tiny_folder) -> Path:
    """A project directory with `fetch` and `features` done."""
    work = tmp_path_factory.mktemp("distribute") / "features"
    work.mkdir()
    write_params(work, **tiny_params(tiny_folder, **MODEL))
    here = Path.cwd()
    os.chdir(work)
    try:
        run_stages("fetch", "features")
    finally:
        os.chdir(here)
    return work


def project(features: Path, data: Path, name: str, strategy: str,
            per_replica_batch: int) -> Path:
    """A copy of the `features` project (prepared from `data`) with its own training params."""
    work = features.parent / name
    shutil.copytree(features, work)
    write_params(work, **tiny_params(data, **MODEL, **params(strategy, per_replica_batch)))
    return work


def start(work: Path, stage: str, cpus: str,
          env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a stage in `work` in a fresh Python."""
    return subprocess.Popen([sys.executable, "-c", STAGE, stage, cpus], cwd=work,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
    """Wait for a run; return its output (it must succeed)."""
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def single(features, tiny_folder) -> Path:
    """One device, with the global batch of two replicas."""
    work = project(features, tiny_folder, "single", "auto", 2 * PER_REPLICA_BATCH)
    for stage in ("train", "finetune"):
        finish(start(work, stage, "whole"))
    return work


def assert_same_training(work: Path, reference: Path) -> float:
    """Both stages' models and best losses in `work` equal the reference's within TOLERANCE and
    RELATIVE_TOLERANCE; returns the largest weight difference."""
    largest = 0.0
    for model in ("models/head.keras", "models/finetuned.keras"):
        ours = keras.models.load_model(work / model).get_weights()
        theirs = keras.models.load_model(reference / model).get_weights()
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, atol=TOLERANCE, rtol=RELATIVE_TOLERANCE)
            largest = max(largest, float(np.max(np.abs(a - b), initial=0)))
    for stage in ("train", "finetune"):
        ours, theirs = (read_json(w / f"dvclive/{stage}/metrics.json") for w in (work, reference))
        assert ours["epochs"] == theirs["epochs"]
        assert ours["best_val_loss"] == pytest.approx(theirs["best_val_loss"],
                                                      rel=RELATIVE_TOLERANCE)
    return largest


def test_mirrored_on_two_logical_cpus_trains_as_one_device(features, tiny_folder, single):
    """Two replicas of PER_REPLICA_BATCH give the single device's models and curves."""
    work = project(features, tiny_folder, "mirrored", "mirrored", PER_REPLICA_BATCH)
    for stage in ("train", "finetune"):
        assert f"{stage}: 2 replicas" in finish(start(work, stage, "split"))
    print(f"mirrored vs one device: max weight difference {assert_same_training(work, single):.2e}")


def free_ports(count: int) -> list[int]:
    """Ports on localhost nobody listens on now."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_localhost_train_as_one_device(features, tiny_folder, single):
    """Two `train` processes joined by TF_CONFIG, one replica each: the chief writes the outputs
    and the TensorBoard logs, the other worker neither, and the head equals the single
    device's. (`finetune` shares the code path, checked under `mirrored` above.)"""
    work = project(features, tiny_folder, "multiworker", "multiworker", PER_REPLICA_BATCH)
    cluster = {"worker": [f"localhost:{port}" for port in free_ports(2)]}
    workers = [start(work, "train", "whole", {"TF_CONFIG": json.dumps(
                   {"cluster": cluster, "task": {"type": "worker", "index": i}})})
               for i in range(2)]
    assert all("train: 2 replicas" in finish(worker) for worker in workers)
    assert len(list(work.glob("logs/*/train/validation/*"))) == 1, "only the chief logs"
    ours, theirs = (keras.models.load_model(w / "models/head.keras").get_weights()
                    for w in (work, single))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=TOLERANCE, rtol=RELATIVE_TOLERANCE)
    assert (read_json(work / "dvclive/train/metrics.json")["best_val_loss"] == pytest.approx(
        read_json(single / "dvclive/train/metrics.json")["best_val_loss"],
        rel=RELATIVE_TOLERANCE))
    print("two workers vs one device: max head weight difference "
          f"{max(float(np.max(np.abs(a - b))) for a, b in zip(ours, theirs)):.2e}")


def test_multiworker_without_a_cluster_is_a_one_line_error(monkeypatch):
    """`multiworker` with no TF_CONFIG names the param and what is missing."""
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match=r"^train.strategy=multiworker needs the TF_CONFIG"):
        distribute.strategy("multiworker", "train.strategy")


@pytest.fixture(scope="module")
def shards(features, tiny_folder) -> Path:
    """A copy of the `features` project without its features, then `--shard 0/2` and
    `--shard 1/2` run at once, each in its own process."""
    work = project(features, tiny_folder, "shards", "auto", PER_REPLICA_BATCH)
    shutil.rmtree(work / "features")
    for path in ("models/extractor.keras", "metrics/features.json"):
        (work / path).unlink()
    shard_processes = [subprocess.Popen(
        [sys.executable, "-m", "transfer.feature_shards", "--shard", f"{i}/2"], cwd=work,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    for i, process in enumerate(shard_processes):
        assert f"features: shard {i}/2" in finish(process)
    return work


def test_merged_feature_shards_equal_one_process(features, shards, monkeypatch):
    """`--merge 2` joins the shards into the features and the extractor file one process wrote,
    bit for bit. (The tiny splits make every case: a shard boundary inside a split, and an
    empty shard.)"""
    monkeypatch.chdir(shards)
    run_features(["--merge", "2"])
    for split in ("train", "val", "test"):
        merged, single = (np.load(w / f"features/{split}_x.npy") for w in (shards, features))
        np.testing.assert_array_equal(merged, single)
        assert np.std(merged, dtype=np.float64) > 0
        np.testing.assert_array_equal(*(np.load(w / f"features/{split}_y.npy")
                                        for w in (shards, features)))
    merged, single = ((w / "models/extractor.keras").read_bytes() for w in (shards, features))
    assert merged == single
    merged, single = (read_json(w / "metrics/features.json") for w in (shards, features))
    assert (merged["shards"], merged["images"]) == (2, single["images"])


def test_merge_refuses_shards_that_do_not_fit(shards, tiny_folder, tmp_path, monkeypatch):
    """A missing shard, or shards extracted with other params, is a one-line error naming the
    shard and writes nothing; a bad `--shard` is a usage error."""
    work = tmp_path / "shards"
    shutil.copytree(shards, work)
    for output in ("features", "metrics"):  # as merged by the test above
        shutil.rmtree(work / output, ignore_errors=True)
    monkeypatch.chdir(work)
    with pytest.raises(UserError, match=r"^shards/features/0-of-3 is missing: run `python -m "
                       r"transfer.feature_shards --shard 0/3` .*found: \['0-of-2', '1-of-2'\]$"):
        run_features(["--merge", "3"])
    write_params(work, **tiny_params(tiny_folder, **MODEL, features={"batch_size": 8}))
    with pytest.raises(UserError, match=r"^shards/features/0-of-2 was extracted from other "
                       r"params than this workspace's"):
        run_features(["--merge", "2"])
    assert not (work / "features").exists() and not (work / "metrics").exists()
    for bad in (["--shard", "2/2"], ["--merge", "0"]):
        with pytest.raises(SystemExit) as exit_info:
            run_features(bad)
        assert exit_info.value.code == 2
