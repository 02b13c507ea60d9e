"""How every stage runs: inputs checked before it starts, progress lines in a log, and the
memory allocator `bin/python` preloads."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, tiny_params, write_params

from transfer.runtime import progress
from transfer.runtime.stage import outputs

STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_before_its_inputs_is_one_line(workdir, tmp_path, capsys, monkeypatch, stage):
    """Each stage started by hand in a fresh project (dvc.yaml and params.yaml only) prints one
    line naming a missing input and the stage of dvc.yaml that writes it, and exits with 2;
    `fetch`, which reads only the dataset, names the missing dataset."""
    shutil.copy(ROOT / "dvc.yaml", workdir / "dvc.yaml")
    write_params(workdir, **tiny_params(tmp_path / "no-such-dataset"))
    module = STAGES[stage]["cmd"].removeprefix("bin/python -m ").split()[0]
    monkeypatch.setattr(sys, "argv", [module])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err
    if stage == "fetch":
        assert "no-such-dataset" in err
        return
    deps = [Path(d) for d in STAGES[stage]["deps"]]
    named = [(name, d) for name, entry in STAGES.items() for d in deps
             if f"stage '{name}' writes" in err and
             any(out == d or d in out.parents or out in d.parents for out in outputs(entry))]
    assert named and named[0][0] != stage, err
    assert not list(workdir.glob("metrics/time/*.json"))  # nothing recorded, nothing written


def test_fit_prints_progress_lines_in_a_log(workdir, capsys, monkeypatch):
    """A slowed `fit` (a sleep per batch) whose output is not a terminal prints a line with the
    epoch, the batch, elapsed time and time left at least every LOG_EVERY seconds, in training
    and in validation (LOG_EVERY made short here; 30 s in a real run)."""
    import keras

    from transfer.training.fitting import fit_logged

    monkeypatch.setattr(progress, "LOG_EVERY", 0.3)
    monkeypatch.setattr(progress, "on_terminal", lambda: False)
    monkeypatch.setattr("transfer.training.fitting.on_terminal", lambda: False)
    monkeypatch.setattr("transfer.training.fitting.require_commit", lambda: None)

    class Sleep(keras.layers.Layer):
        """Waits 50 ms a batch, in training and in validation (the model runs eagerly)."""

        def call(self, x):
            """`x`, after a sleep."""
            time.sleep(0.05)
            return x

    model = keras.Sequential([keras.Input((4,)), Sleep(),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"],
                  run_eagerly=True)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(400, 4)).astype("float32"), rng.integers(0, 2, 400)
    stamps = []
    real_print = print

    def stamped(*args, **kwargs):
        """print, with the time each line came."""
        stamps.append((time.perf_counter(), " ".join(map(str, args))))
        real_print(*args, **kwargs)

    monkeypatch.setattr("builtins.print", stamped)
    fit_logged(model, workdir / "live", None, workdir / "best.keras", None, x=x, y=y,
               validation_data=(x, y), batch_size=20, epochs=2)
    lines = [(t, text) for t, text in stamps if ", about " in text]
    phases = {f"live: epoch {e}/2, {phase}: " for e in (1, 2)
              for phase in ("training", "validation")}
    for phase in phases:  # each 20 batches of 50 ms: a line every 0.3 s of each
        times = [t for t, text in lines if text.startswith(phase)]
        assert len(times) >= 2, (phase, [text for _, text in stamps])
        assert np.diff(times).max() < 0.3 + 0.2, (phase, np.diff(times))
    assert all("/20 batches (" in text and " s left" in text for _, text in lines)


def stage_through_launcher(workdir: Path, folder: Path, **env: str) -> str:
    """Run `fetch` on `folder` through bin/python in `workdir`, with `env` added; its stderr."""
    write_params(workdir, **tiny_params(folder))
    environment = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD",
                                                                    "TRANSFER_ALLOCATOR")}
    done = subprocess.run([str(ROOT / "bin/python"), "-m", "transfer.fetch"], cwd=workdir,
                          env={**environment, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="bin/python preloads an allocator on Linux")
def test_launcher_runs_stages_under_mimalloc(workdir, tiny_folder):
    """A stage run through bin/python has mimalloc (the set-up step's wheel) loaded and says so
    in its last line; TRANSFER_ALLOCATOR=glibc runs it with glibc's malloc, nothing said."""
    err = stage_through_launcher(workdir, tiny_folder)
    assert err.splitlines()[-1].startswith("fetch: ") and err.endswith(", mimalloc\n"), err
    err = stage_through_launcher(workdir, tiny_folder, TRANSFER_ALLOCATOR="glibc")
    assert err.endswith(", glibc malloc\n") and "bin/python" not in err, err


@pytest.mark.skipif(sys.platform != "linux", reason="bin/python preloads an allocator on Linux")
def test_launcher_without_the_library_falls_back_in_one_line(tmp_path):
    """An environment without the allocator's library (here one with no site-packages, as
    python3 outside the set-up step) runs with glibc's malloc after one line that says so."""
    venv = tmp_path / "bare-venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin/python").symlink_to(sys.executable)
    code = "from transfer.runtime.devices import allocator; print(allocator())"
    done = subprocess.run([str(ROOT / "bin/python"), "-c", code], capture_output=True,
                          text=True, env={**os.environ, "VIRTUAL_ENV": str(venv),
                                          "TRANSFER_ALLOCATOR": "mimalloc", "LD_PRELOAD": ""})
    assert done.returncode == 0 and done.stdout == "glibc malloc\n", done
    assert done.stderr.count("\n") == 1 and "mimalloc not found" in done.stderr, done.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="bin/python preloads an allocator on Linux")
@pytest.mark.parametrize("allocator", ["mimalloc", "tcmalloc"])
def test_openvino_runs_under_the_preloaded_allocator(allocator):
    """OpenVINO compiles and runs a model under the allocator bin/python preloads (its oneTBB
    loads hwloc with RTLD_DEEPBIND, which without bin/python's setting aborts the process)."""
    if allocator == "tcmalloc" and not list(Path("/usr/lib").glob("*/libtcmalloc_minimal.so.*")):
        pytest.skip("no libtcmalloc_minimal on this machine")
    code = ("import numpy as np, openvino as ov, openvino.opset13 as ops; "
            "x = ops.parameter([1, 4], np.float32); "
            "compiled = ov.Core().compile_model(ov.Model([ops.relu(x)], [x]), 'CPU'); "
            "from transfer.runtime.stage import allocator; "
            "print(compiled(np.full((1, 4), -1, np.float32))[0].tolist(), allocator())")
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("LD_PRELOAD", "TBB_ENABLE_SANITIZERS")}
    done = subprocess.run([str(ROOT / "bin/python"), "-c", code], capture_output=True,
                          text=True, env={**environment, "TRANSFER_ALLOCATOR": allocator})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == f"[[0.0, 0.0, 0.0, 0.0]] {allocator}\n"
