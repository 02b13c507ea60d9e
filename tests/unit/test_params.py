"""params.yaml validation: unknown keys, types, ranges and the one-line error of a stage."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, write_params
from pydantic import BaseModel

from transfer.params.fields import KEYS
from transfer.params.whole import Params, load_params
from transfer.runtime.errors import ParamError, UserError


def load_error(workdir: Path, **sections: dict) -> str:
    """Write params with `sections` merged in, load them and return the ParamError message."""
    write_params(workdir, **sections)
    with pytest.raises(ParamError) as err:
        load_params()
    assert isinstance(err.value, UserError)
    message = str(err.value)
    assert "\n" not in message
    return message


def test_project_params_load(workdir):
    """The project's own params.yaml loads, and every value in it reaches the dataclasses."""
    write_params(workdir)
    params = load_params()
    assert isinstance(params, Params)
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params.seed == raw["seed"]
    for section, values in raw.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            loaded = getattr(getattr(params, section), key)
            if isinstance(value, dict):
                for sub, sub_value in value.items():
                    assert getattr(loaded, sub) == sub_value, f"{section}.{key}.{sub}"
            else:
                assert loaded == value, f"{section}.{key}"


def test_missing_params_file(workdir):
    """Without params.yaml in the current directory the error says so."""
    with pytest.raises(ParamError, match="params.yaml not found"):
        load_params()


def test_unknown_key_suggests_the_closest_name(workdir):
    """A misspelt key is named in full, with a did-you-mean suggestion."""
    message = load_error(workdir, train={"epoch": 10})
    assert "'train.epoch'" in message
    assert "did you mean 'epochs'" in message


def test_unknown_key_without_close_match_lists_known_keys(workdir):
    """A key that resembles nothing is rejected with the list of valid keys."""
    message = load_error(workdir, train={"zzzz": 1})
    assert "'train.zzzz'" in message
    assert "known keys:" in message and "epochs" in message and "patience" in message


@pytest.mark.parametrize(("section", "expected"), [
    ("bogus", "known keys: seed, data"),
    ("trian", "did you mean 'train'"),
])
def test_unknown_section(workdir, section, expected):
    """An unknown top-level section is named, with a suggestion or the known sections."""
    message = load_error(workdir, **{section: 1})
    assert f"unknown parameter '{section}'" in message
    assert expected in message


def test_section_must_be_a_mapping(workdir):
    """A section given as a scalar is rejected, naming the section."""
    message = load_error(workdir, data=5)
    assert "data must be a mapping" in message


@pytest.mark.parametrize(("sections", "key", "expected"), [
    ({"train": {"epochs": "ten"}}, "train.epochs='ten'", "an integer"),
    ({"train": {"epochs": True}}, "train.epochs=True", "an integer"),
    ({"train": {"epochs": 2.5}}, "train.epochs=2.5", "an integer"),
    ({"train": {"learning_rate": "fast"}}, "train.learning_rate='fast'", "a number"),
    ({"finetune": {"learning_rate": False}}, "finetune.learning_rate=False", "a number"),
    ({"model": {"backbone": 3}}, "model.backbone=3", "a string"),
    ({"finetune": {"augment": {"flip": "yes"}}}, "finetune.augment.flip='yes'", "true or false"),
])
def test_wrong_type(workdir, sections, key, expected):
    """A value of the wrong type is named with the expected type."""
    message = load_error(workdir, **sections)
    assert key in message
    assert f"wrong type: expected {expected}" in message


def test_exponent_without_dot_is_a_number(workdir):
    """`dvc exp run -S finetune.learning_rate=0.00001` writes `1e-05`, which PyYAML reads as a
    string; it is taken as the number, and 'auto', 'all' or a number of layers all load."""
    path = write_params(workdir, finetune={"learning_rate": 0.5, "layers": 12})
    text = path.read_text().replace("learning_rate: 0.5", "learning_rate: 1e-05")
    assert yaml.safe_load(text)["finetune"]["learning_rate"] == "1e-05"
    path.write_text(text)
    params = load_params(path)
    assert params.finetune.learning_rate == 1e-05 and params.finetune.layers == 12
    for word in ("all", "auto"):
        path.write_text(text.replace("layers: 12", f"layers: {word}"))
        assert load_params(path).finetune.layers == word


@pytest.mark.parametrize(("section", "key", "value"), [
    ("data", "fraction", 0),
    ("data", "fraction", 1.5),
    ("data", "val_split", 0),
    ("data", "val_split", 1),
    ("data", "image_size", 4),
    ("finetune", "layers", -1),
    ("finetune", "layers", "top"),
    ("train", "epochs", -1),
    ("train", "epochs", 0),
    ("train", "dropout", 1.0),
    ("evaluate", "top_k", 0),
    ("features", "precision", "float16"),
    ("finetune", "precision", "bfloat16"),
    ("train", "strategy", "horovod"),
    ("finetune", "strategy", "tpu"),
])
def test_out_of_range(workdir, section, key, value):
    """A value outside its allowed range is rejected, naming the key and the value."""
    message = load_error(workdir, **{section: {key: value}})
    shown = message.split(" ")[0]
    number = float(value) if isinstance(value, int) else value
    assert shown in (f"{section}.{key}={value!r}", f"{section}.{key}={number!r}")
    assert "is not allowed" in message


def test_folder_source_needs_an_existing_path(workdir):
    """data.source folder with a path that does not exist names data.path."""
    missing = workdir / "no-such-dataset"
    message = load_error(workdir, data={"source": "folder", "path": str(missing)})
    assert message.startswith("data.path=")
    assert str(missing) in message and "a path that exists" in message


def test_folder_source_needs_a_path(workdir):
    """data.source folder with an empty path names data.path."""
    message = load_error(workdir, data={"source": "folder", "path": ""})
    assert message.startswith("data.path=''")


def test_unknown_source(workdir):
    """A data.source other than cifar10 or folder is rejected."""
    message = load_error(workdir, data={"source": "imagenet"})
    assert message.startswith("data.source='imagenet'")


def test_weights_file_must_exist(workdir):
    """model.weights pointing to a missing file is rejected, naming the file."""
    message = load_error(workdir, model={"weights": "missing.weights.h5"})
    assert message.startswith("model.weights='missing.weights.h5'")


def test_existing_weights_file_is_accepted(workdir):
    """model.weights pointing to an existing file loads."""
    (workdir / "mine.weights.h5").write_bytes(b"")
    write_params(workdir, model={"weights": "mine.weights.h5"})
    assert load_params().model.weights == "mine.weights.h5"


def test_int_accepted_where_float_expected(workdir):
    """An integer is accepted for a float parameter and converted to float."""
    write_params(workdir, finetune={"learning_rate": 1}, data={"fraction": 1})
    params = load_params()
    assert params.finetune.learning_rate == 1.0
    assert type(params.finetune.learning_rate) is float
    assert type(params.data.fraction) is float


def test_null_allowed_only_for_optional(workdir):
    """cut_layer may be null, but a required integer may not."""
    write_params(workdir, model={"cut_layer": None})
    assert load_params().model.cut_layer is None
    message = load_error(workdir, train={"epochs": None})
    assert "train.epochs=None" in message


@pytest.mark.parametrize(("sections", "expected"), [
    ({"train": {"epoch": 3}}, ("train.epoch", "did you mean 'epochs'")),
    ({"model": {"backbone": "EfficientNetB9"}}, ("model.backbone='EfficientNetB9'",
                                                  "did you mean 'EfficientNetB7'")),
], ids=["unknown-key", "unknown-backbone"])
@pytest.mark.parametrize("stage", ["fetch", "features"])
def test_stage_reports_bad_param_in_one_line(workdir, sections, expected, stage):
    """A stage with a bad param, even one only a later stage uses, exits 2 before any work
    and prints exactly one line, 'error:' naming the key: none of TensorFlow's start-up lines
    (features imports it), though TF_CPP_MIN_LOG_LEVEL is not set."""
    write_params(workdir, **sections)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-m", f"transfer.{stage}"], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert all(part in lines[0] for part in expected), lines[0]
    assert not (workdir / "data").exists()


@pytest.mark.parametrize(("sections", "start"), [
    ({"model": {"input_size": "big"}}, "model.input_size='big'"),
    ({"model": {"input_size": 16}}, "model.input_size=16"),
    ({"finetune": {"batch_size": 0}}, "finetune.batch_size=0"),
    ({"finetune": {"learning_rate": "fast"}}, "finetune.learning_rate='fast'"),
    ({"data": {"val_min": -1}}, "data.val_min=-1")])
def test_auto_params_take_auto_or_an_allowed_value(workdir, sections, start):
    """A recipe param is `auto` or an explicit value in range; anything else is one line that
    names the key, the value, `auto` and the range."""
    message = load_error(workdir, **sections)
    assert message.startswith(start)
    if "val_min" not in start:
        assert "'auto'" in message


def test_auto_is_the_default_and_explicit_values_load(workdir):
    """The recipe params default to `auto`; numbers written in their place load as numbers."""
    write_params(workdir)
    p = load_params()
    assert (p.model.input_size, p.finetune.batch_size, p.finetune.learning_rate) == ("auto",) * 3
    write_params(workdir, model={"input_size": 128},
                 finetune={"batch_size": 32, "learning_rate": "1e-04", "augment": {"zoom": 0.2}})
    p = load_params()
    assert (p.model.input_size, p.finetune.batch_size, p.finetune.learning_rate,
            p.finetune.augment.zoom) == (128, 32, 1e-4, 0.2)


def test_relative_data_path_is_read_from_the_repository(workdir, tmp_path, monkeypatch,
                                                         tiny_folder):
    """In the temporary copy where DVC runs a queued experiment, a relative data.path still
    means the folder beside the repository (DVC_ROOT), as it does in the workspace."""
    from conftest import tiny_params

    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    shutil.copytree(tiny_folder, repo / "data" / "images")
    write_params(workdir, **tiny_params(Path("data/images")))
    monkeypatch.setenv("DVC_ROOT", str(repo))
    assert load_params().data.path == str(repo / "data/images")


def test_every_stage_knows_every_key():
    """The key names each stage checks, also in the sections it does not read, are the
    fields of the sections (and of `finetune.augment`)."""
    def fields(model: type, path: str = "") -> dict[str, tuple[str, ...]]:
        found = {path: tuple(model.model_fields)}
        for name, field in model.model_fields.items():
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                found |= fields(field.annotation, f"{path}.{name}".lstrip("."))
        return found
    assert KEYS == fields(Params)
