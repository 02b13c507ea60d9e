"""Shared fixtures: tiny generated image folders and workspaces laid out like the project root."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import skimage
import yaml
from PIL import Image

from transfer.params.overrides import merged

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
# The test files that take longest (seconds of `--durations` on 2 cores), longest first. `make
# test` hands whole files to its workers in collection order (`--dist loadfile
# --no-loadscope-reorder`): the long ones go out first, so no worker ends alone on one of them.
LONGEST_FIRST = ("e2e/test_pipeline.py",  # 330
                 "e2e/test_docs.py",  # every documented command: minutes
                 "e2e/test_bench.py",  # 245
                 "e2e/test_engines.py",  # 141
                 "e2e/test_transfer.py",  # 135
                 "e2e/test_finetune.py",  # 130
                 "e2e/test_export.py",  # 115
                 "e2e/test_distribute.py",  # 89
                 "e2e/test_audit_paper.py",  # 40
                 "e2e/test_predict.py",  # 64
                 "unit/test_report.py")  # 40

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"]


def make_image_folder(root: Path, classes: list[str], n_train: int, n_test: int,
                      size: int = 16, suffix: str = ".png", seed: int = 0) -> Path:
    """Write train/<class>/ and test/<class>/ RGB images whose colour depends on the class."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            hue = np.array([(c * 97) % 256, (c * 53 + 80) % 256, (c * 151 + 160) % 256])
            for i in range(n):
                pixels = np.clip(hue + rng.normal(0, 30, (size, size, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:03d}{suffix}")
    return root


def moved(image: np.ndarray, dy: int, dx: int, brighter: int) -> np.ndarray:
    """`image` moved by (dy, dx) (the edge repeated into the gap) and brightened."""
    side = image.shape[0]
    padded = np.pad(image, ((abs(dy),) * 2, (abs(dx),) * 2, (0, 0)), mode="edge")
    out = padded[abs(dy) - dy:abs(dy) - dy + side, abs(dx) - dx:abs(dx) - dx + side]
    return np.clip(out.astype(int) + brighter, 0, 255).astype(np.uint8)


def write_params(workdir: Path, **sections: dict) -> Path:
    """Write params.yaml in `workdir`: the project's own, with `sections` merged over it."""
    params = merged(yaml.safe_load((ROOT / "params.yaml").read_text()), sections)
    path = workdir / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def tiny_params(data_path: Path, **overrides: dict) -> dict:
    """Params for a seconds-long run: tiny images, a small random-weight backbone, few epochs."""
    sections = {
        "data": {"source": "folder", "path": str(data_path), "image_size": 16, "val_split": 0.25,
                 "val_min": 0},
        "model": {"backbone": "MobileNetV2", "input_size": 32, "weights": "none"},
        "features": {"batch_size": 16},
        "train": {"epochs": 2, "batch_size": 16, "patience": 2},
        "finetune": {"layers": 10, "epochs": 1, "batch_size": 16, "learning_rate": 0.001},
        "evaluate": {"batch_size": 16},
    }
    for name, values in overrides.items():
        sections.setdefault(name, {}).update(values)
    return sections


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project root as the current directory."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three classes, 8 train and 3 test images each, 16x16 PNG."""
    return make_image_folder(tmp_path_factory.mktemp("tiny"), ["cat", "dog", "fox"], 8, 3)


@pytest.fixture(scope="session")
def cifar_like_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ten CIFAR-10 classes, 6 train and 2 test images each, 32x32 JPEG."""
    return make_image_folder(tmp_path_factory.mktemp("cifar"), CIFAR_CLASSES, 6, 2,
                             size=32, suffix=".jpg")


def copy_project(dest: Path) -> None:
    """Copy what `dvc repro` needs (dvc.yaml, params.yaml, bin/, src/, report/, study/) into
    `dest`."""
    for name in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "bin", dest / "bin")
    shutil.copytree(ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__",
                                                                              "*.egg-info"))
    shutil.copytree(ROOT / "report/templates", dest / "report/templates")
    shutil.copy(ROOT / "report/notes.md", dest / "report/notes.md")
    shutil.copytree(ROOT / "study", dest / "study", ignore=shutil.ignore_patterns("results.json"))


def stage_module(name: str) -> str:
    """The module that pipeline stage `name` runs, from its command in dvc.yaml."""
    cmd = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][name]["cmd"]
    return cmd.removeprefix("bin/python -m ").split()[0]


def run_stages(*names: str) -> None:
    """Run pipeline stages in this process, in the current directory, as `dvc repro` would."""
    for name in names:
        importlib.import_module(stage_module(name)).main()


def hand_built_features(model, backbone: str, input_size: int, images: np.ndarray) -> np.ndarray:
    """`base(preprocess_input(resize(images)))` built by hand from keras.applications, with the
    backbone weights copied (in order) from `model`, an extractor or an exported classifier."""
    import keras
    import tensorflow as tf

    from transfer.params.catalogue import family

    reference = getattr(keras.applications, backbone)(
        include_top=False, weights=None, input_shape=(input_size, input_size, 3), pooling="avg")
    ours = [layer for layer in model.layers
            if layer.weights and layer.name not in ("preprocess", "head", "head_logits")]
    theirs = [layer for layer in reference.layers if layer.weights]
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs):
        ref.set_weights(mine.get_weights())
    module = importlib.import_module(f"keras.applications.{family(backbone)}")
    resized = tf.image.resize(images.astype(np.float32), (input_size, input_size)).numpy()
    return reference.predict(module.preprocess_input(resized), verbose=0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the files of LONGEST_FIRST first, in that order; the rest keep theirs."""
    missing = [name for name in LONGEST_FIRST if not (ROOT / "tests" / name).exists()]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py: LONGEST_FIRST names missing files {missing}")
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(
        str(item.path.relative_to(ROOT / "tests")), len(rank)))


# Photos that scikit-image ships, with the ImageNet classes a right answer may name.
PHOTOS = {
    "chelsea.png": {281, 282, 285},  # tabby, tiger cat, Egyptian cat
    "coffee.png": {967},             # espresso
    "motorcycle_left.png": {665, 670},  # moped, motor scooter
    "rocket.jpg": {657, 744},        # missile, projectile
}


def photos(size: int) -> np.ndarray:
    """The photos above as RGB float32 pixels in 0-255, resized to size x size."""
    folder = Path(skimage.__file__).parent / "data"
    return np.stack([np.asarray(Image.open(folder / name).convert("RGB").resize(
        (size, size), Image.Resampling.BILINEAR), dtype=np.float32) for name in PHOTOS])
