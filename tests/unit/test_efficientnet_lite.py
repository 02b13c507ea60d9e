"""EfficientNetLite0 with its real ImageNet weights: checkpoint reader, conversion, features."""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import PHOTOS, ROOT, photos

from transfer.models.backbones import build_extractor
from transfer.models.efficientnet_lite import (
    VARIANTS,
    architecture,
    cached_weights,
    checkpoint_path,
    convert,
    lite,
)
from transfer.models.torch_checkpoint import MAGIC, PROTOCOL, CheckpointError, read_state_dict
from transfer.runtime.errors import UserError


@pytest.fixture(scope="module")
def imagenet_model() -> keras.Model:
    """The 1000-class EfficientNet-Lite0 with the converted ImageNet weights."""
    return lite(0)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_top3_on_photos_holds_the_right_class(variant):
    """Each photo's top-3 ImageNet classes contain a right one, for every Lite variant at its
    own input size; random weights' do not."""
    images = photos(VARIANTS[variant][2])
    for name, probs in zip(PHOTOS, lite(variant).predict(images, verbose=0)):
        top3 = set(np.argsort(-probs)[:3].tolist())
        assert top3 & PHOTOS[name], f"{name}: top-3 {sorted(top3)} misses {PHOTOS[name]}"
    keras.utils.set_random_seed(0)
    random = lite(variant, weights=None).predict(images, verbose=0)
    hits = sum(bool(set(np.argsort(-p)[:3].tolist()) & PHOTOS[n]) for n, p in zip(PHOTOS, random))
    assert hits <= 1


def test_extractor_features_equal_the_pooled_features(imagenet_model):
    """The pipeline's extractor computes the 1000-class model's pooled features."""
    images = photos(224)
    pooled = keras.Model(imagenet_model.input, imagenet_model.get_layer("avg_pool").output)
    expected = pooled.predict(images, verbose=0)
    actual = build_extractor("EfficientNetLite0", "imagenet", 224, 224).predict(images, verbose=0)
    assert expected.std() > 0.1
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def test_input_is_normalised_as_lite_expects():
    """Rescaling and Normalization map pixels x to (x - 127) / 128, also after a save."""
    model = architecture(0, include_top=False)
    front = keras.Model(model.input, model.layers[2].output)  # image, rescaling, normalization
    pixels = np.array([0, 127, 255], np.float32).reshape(1, 1, 3, 1).repeat(3, -1)
    pixels = np.broadcast_to(pixels, (1, 3, 3, 3)).copy()
    np.testing.assert_allclose(front.predict(pixels, verbose=0), (pixels - 127) / 128,
                               atol=1e-6)


def test_weights_are_converted_once(tmp_path, monkeypatch):
    """The first use writes a Keras weights file under $KERAS_HOME; later uses read it."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    path = cached_weights(0)
    assert path.parent == tmp_path / "models" and path.name.endswith(".weights.h5")
    written = path.stat().st_mtime_ns
    assert cached_weights(0) == path and path.stat().st_mtime_ns == written


def test_a_changed_conversion_rebuilds_the_cached_weights(tmp_path, monkeypatch):
    """A fix to the conversion code (simulated: a copy of the package whose conversion doubles
    every conv kernel) writes and uses a new weights file at once; the original code keeps
    reading its own, untouched."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    original = cached_weights(0)
    written = original.stat().st_mtime_ns
    changed = tmp_path / "src"
    shutil.copytree(ROOT / "src/transfer", changed / "transfer",
                    ignore=shutil.ignore_patterns("__pycache__"))
    module = changed / "transfer/models/efficientnet_lite.py"
    conv = 'return [state.pop(f"{name}.weight").transpose(2, 3, 1, 0)]'
    assert conv in module.read_text()
    module.write_text(module.read_text().replace(conv, conv.replace("[", "[2 * ", 1)))
    out = subprocess.run(
        [sys.executable, "-c", "from transfer.models.efficientnet_lite import cached_weights as c; "
                               "print(c(0))"],
        env={**os.environ, "PYTHONPATH": str(changed)}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rebuilt = Path(out.stdout.split()[-1])
    assert rebuilt != original and rebuilt.parent == original.parent and rebuilt.is_file()
    assert cached_weights(0) == original and original.stat().st_mtime_ns == written
    kernels = []
    for path in (original, rebuilt):
        model = architecture(0)
        model.load_weights(path)
        kernels.append(model.get_layer("stem_conv").get_weights()[0])
    np.testing.assert_array_equal(kernels[1], 2 * kernels[0])


def test_reader_gives_the_checkpoint_tensors():
    """296 tensors, 4,694,073 values, PyTorch's layouts (conv OIHW, depthwise C x 1 x h x w)."""
    state = read_state_dict(checkpoint_path(0))
    assert len(state) == 296 and sum(a.size for a in state.values()) == 4_694_073
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.1._depthwise_conv.weight"].shape == (96, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)


def _legacy_file(path: Path, payload: object) -> Path:
    """A file with the legacy header and `payload` pickled where the state dict goes."""
    with path.open("wb") as f:
        for part in (MAGIC, PROTOCOL, {"little_endian": True}, payload, []):
            pickle.dump(part, f)
    return path


@pytest.mark.parametrize("content", ["text", "truncated", "no tensors", "other class"])
def test_reader_refuses_what_is_not_a_checkpoint(tmp_path, content):
    """Anything but a legacy checkpoint of tensors is one line naming the file; a pickled
    reference to another class is never resolved."""
    path = tmp_path / "weights.pth"
    if content == "text":
        path.write_text("not a checkpoint\n")
    elif content == "truncated":
        path.write_bytes(checkpoint_path(0).read_bytes()[:1_000_000])
    elif content == "no tensors":
        _legacy_file(path, {"epoch": 3})
    else:
        _legacy_file(path, Path("/"))  # pickled as pathlib.PosixPath
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    message = str(err.value)
    assert message.startswith(f"{path}: not a legacy PyTorch checkpoint") and "\n" not in message


def test_conversion_refuses_a_checkpoint_of_another_shape():
    """A missing or an extra tensor stops the conversion with a UserError."""
    state = read_state_dict(checkpoint_path(0))
    model = architecture(0)
    with pytest.raises(UserError, match="tensor '_blocks.3._bn1.bias' is missing"):
        convert({k: v for k, v in state.items() if k != "_blocks.3._bn1.bias"}, 0, model)
    with pytest.raises(UserError, match="unexpected tensors: _blocks.16"):
        convert({**state, "_blocks.16._bn1.bias": np.zeros(3)}, 0, model)
    with pytest.raises(UserError, match="not an EfficientNet-Lite1 checkpoint"):
        convert(state, 1, architecture(1))
