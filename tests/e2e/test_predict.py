"""`python -m transfer.predict` on images the test writes, with a model from a tiny run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_stages, tiny_params, write_params
from PIL import Image

from transfer import predict
from transfer.data.folders import DataError
from transfer.models import engines
from transfer.runtime.errors import UserError
from transfer.runtime.files import read_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_folder) -> Path:
    """A project directory after fetch, features, train, finetune and evaluate (3 classes)."""
    work = tmp_path_factory.mktemp("predict")
    write_params(work, **tiny_params(tiny_folder))
    before = Path.cwd()
    os.chdir(work)
    try:
        run_stages("fetch", "features", "train", "finetune", "evaluate")
    finally:
        os.chdir(before)
    return work


@pytest.fixture
def photos(tmp_path) -> Path:
    """A folder of a JPEG, a grayscale PNG, a large PNG and a stray text file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(folder / "a.jpg")
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(folder / "b_gray.png")
    Image.fromarray(rng.integers(0, 256, (1200, 1600, 3), dtype=np.uint8)).save(
        folder / "c_large.png")
    (folder / "notes.txt").write_text("not an image\n")
    return folder


def test_json_gives_every_image_a_distribution(trained, photos, monkeypatch, capsys):
    """--json: one entry per image file, the dataset's class names, probabilities that are
    sorted, in [0, 1] and (all three classes shown) sum to 1."""
    monkeypatch.chdir(trained)
    predict.main([str(photos), "--json", "--top", "5"])
    entries = json.loads(capsys.readouterr().out)
    assert [Path(e["image"]).name for e in entries] == ["a.jpg", "b_gray.png", "c_large.png"]
    for entry in entries:
        classes = [p["class"] for p in entry["predictions"]]
        probs = [p["probability"] for p in entry["predictions"]]
        assert sorted(classes) == ["cat", "dog", "fox"]
        assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
        assert sum(probs) == pytest.approx(1, abs=1e-5)


def test_openvino_engine_predicts_what_keras_does(trained, photos, monkeypatch, capsys):
    """--engine openvino gives the same classes, in the same order, with probabilities within
    the engines' tolerance of Keras's."""
    monkeypatch.chdir(trained)
    runs = {}
    for engine in ("keras", "openvino"):
        predict.main([str(photos), "--json", "--top", "3", "--engine", engine])
        runs[engine] = json.loads(capsys.readouterr().out)
    for keras_entry, openvino_entry in zip(runs["keras"], runs["openvino"]):
        assert ([p["class"] for p in keras_entry["predictions"]]
                == [p["class"] for p in openvino_entry["predictions"]])
        np.testing.assert_allclose([p["probability"] for p in openvino_entry["predictions"]],
                                   [p["probability"] for p in keras_entry["predictions"]],
                                   atol=engines.TOLERANCE)


def test_table_shows_the_top_classes_and_plot_writes_a_png(trained, photos, monkeypatch, capsys):
    """The default output is one line per image with `--top` classes, and a line on stderr says
    the probabilities are calibrated, with the temperature `evaluate` fitted; --plot draws a
    PNG."""
    monkeypatch.chdir(trained)
    plot = trained / "predictions.png"
    predict.main([str(photos / "c_large.png"), "--top", "2", "--plot", str(plot)])
    out = capsys.readouterr()
    temperature = read_json(trained / "metrics/evaluate.json")["finetuned"]["calibration"][
        "temperature"]
    assert f"calibrated (temperature {temperature:.2f}, fitted" in out.err
    lines = out.out.splitlines()
    assert len(lines) == 1 and lines[0].startswith(str(photos / "c_large.png"))
    assert len([w for w in lines[0].split() if w.endswith("%")]) == 2
    assert plot.read_bytes().startswith(PNG_MAGIC)
    assert Image.open(plot).size[1] > 100


def test_show_example_draws_a_dataset_image_with_its_prediction(trained, monkeypatch):
    """show_example picks an image by split, class and index and returns the top classes."""
    monkeypatch.chdir(trained)
    out = trained / "example.png"
    top = predict.show_example("test", "dog", out, index=1)
    assert [c for c, _ in top] and {c for c, _ in top} <= {"cat", "dog", "fox"} and len(top) == 3
    assert out.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(UserError, match="index 9 is out of range: test has 3 dog images"):
        predict.show_example("test", "dog", out, index=9)


def test_bad_inputs_are_one_line_errors(trained, photos, monkeypatch):
    """A missing path, a file that is no image, and class names of another dataset."""
    monkeypatch.chdir(trained)
    with pytest.raises(UserError, match="missing.jpg: no such file or folder"):
        predict.main([str(photos / "missing.jpg")])
    with pytest.raises(DataError, match=r"notes.txt: cannot decode image \(.*\)$"):
        predict.main([str(photos / "notes.txt")])
    other = trained / "other_classes.json"
    other.write_text(json.dumps([f"class{i}" for i in range(5)]))
    with pytest.raises(UserError, match="predicts 3 classes but .*other_classes.json names 5"):
        predict.main([str(photos), "--classes", str(other)])


def test_command_line_error_exits_2_with_one_error_line(trained, photos):
    """Run as a program, a model from another dataset exits 2 with a last line 'error: ...'."""
    other = trained / "ten_classes.json"
    other.write_text(json.dumps([f"c{i}" for i in range(10)]))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "transfer.predict", str(photos), "--classes",
                             str(other)], cwd=trained, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith("error: models/model.keras predicts 3")
