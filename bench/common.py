"""What the benchmark scripts share: the project's params, copies of the project and workspaces
to run its stages in, commands run there, datasets, scoring, and the result pages they write.

Run the scripts from the repository root as modules (`python -m bench.bench`); their pages and
figures are under `bench/results/`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from transfer.data.folders import find_layout, opened_folder, scan_folder
from transfer.params.overrides import merged
from transfer.runtime.files import atomic_path, read_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench/results"
SHARED_DATA = ROOT.parent / "shared/data/cifar10-jpg.tar.gz"


def params_of(folder: Path = ROOT) -> dict:
    """The params.yaml of `folder` (this project's by default) as a dict."""
    return yaml.safe_load((folder / "params.yaml").read_text())


def write_params(folder: Path, params: dict) -> None:
    """Write `params` as the params.yaml of `folder`."""
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def change_params(folder: Path, changes: dict) -> dict:
    """Merge the nested `changes` into `folder`'s params.yaml, as `dvc exp run -S` does (see
    `transfer.params.overrides`); the params written."""
    params = merged(params_of(folder), changes)
    write_params(folder, params)
    return params


def folder_params(data: Path, fraction: float = 1.0, changes: dict | None = None) -> dict:
    """This project's params reading the image folder `data` (a stratified `fraction` of it),
    with the nested `changes` merged in."""
    on_folder = {"data": {"source": "folder", "path": str(data), "fraction": fraction}}
    return merged(merged(params_of(), on_folder), changes or {})


def generated_dataset(root: Path, classes: int = 10, train: int = 12, test: int = 2) -> Path:
    """Random 32 px JPEGs in train/<class>/ and test/<class>/ (for --quick)."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg")
    return root


def subset(source: Path, dest: Path, train: int, test: int) -> Path:
    """Copy the first `train` and `test` images of every class of an image-folder dataset."""
    with opened_folder(source) as top:
        dataset = scan_folder(find_layout(top))
        for split, per_class in (("train", train), ("test", test)):
            files = getattr(dataset, split)
            taken: dict[int, int] = {}
            for path, label in zip(files.paths, files.labels):
                if taken.get(label, 0) < per_class:
                    taken[label] = taken.get(label, 0) + 1
                    folder = dest / split / dataset.classes[label]
                    folder.mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, folder / path.name)
    return dest


def unpacked(source: Path, work: Path) -> Path:
    """`source` as a directory with train/ and test/ (an archive is unpacked into `work`)."""
    with opened_folder(source) as top:
        layout = find_layout(top)
        if source.is_dir():
            return layout.train.parent
        shutil.copytree(layout.train.parent, work / "data")
    return work / "data"


def launch(repo: Path, *args: str) -> subprocess.Popen:
    """Start a command in `repo` with this interpreter's tools on PATH, and ahead of the
    installed package `repo`'s own `src/`, or for a workspace without one this benchmark's
    (so that a benchmark run from a copy of the project runs the copy's code)."""
    src = repo / "src" if (repo / "src").is_dir() else ROOT / "src"
    env = {**os.environ, "PYTHONPATH": str(src), "TF_CPP_MIN_LOG_LEVEL": "3",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.Popen(args, cwd=repo, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> str:
    """Wait for a launched command; its output (exits the benchmark if it failed)."""
    output, _ = process.communicate()
    if process.returncode:
        sys.exit(f"bench: {' '.join(process.args)} failed:\n{output[-6000:]}")
    return output


def run(repo: Path, *args: str) -> tuple[str, float]:
    """Run a command in `repo` (see `launch`); its output and seconds."""
    begin = time.perf_counter()
    output = finish(launch(repo, *args))
    return output, time.perf_counter() - begin


def stage(work: Path, name: str) -> dict:
    """Run the stage `name` (`python -m transfer.<name>`, no DVC) in the workspace `work`, a
    folder with its own params.yaml; the stage's time record (seconds, peak memory)."""
    run(work, sys.executable, "-m", f"transfer.{name}")
    return read_json(work / "metrics/time" / f"{name}.json")


def project(work: Path, data: Path, sections: dict) -> Path:
    """A fresh git + DVC copy of this project reading `data`, its params merged with the nested
    `sections`."""
    repo = work / "project"
    repo.mkdir()
    for name in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "bin", repo / "bin")  # the stages' interpreter (dvc.yaml's cmds)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "report/templates", repo / "report/templates")
    shutil.copy(ROOT / "report/notes.md", repo / "report/notes.md")
    shutil.copytree(ROOT / "study", repo / "study", ignore=shutil.ignore_patterns("results.json"))
    write_params(repo, folder_params(data, changes=sections))
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"],
                    [*git, "commit", "-qm", "bench"]):
        run(repo, *command)
    return repo


def probabilities(model: object, images: np.ndarray,
                  transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """A Keras model's class probabilities for `images` (each batch through `transform` first),
    250 images a batch."""
    from transfer.models.engines import predict_batches

    out = np.empty((len(images), model.output.shape[-1]), dtype=np.float32)
    predict_batches(model.predict_on_batch, images, 250, out, desc="score",
                    transform=transform)
    return out


def write_section(path: Path, name: str, text: str) -> None:
    """Replace the section `name` of the results file `path` (kept between marker comments,
    added at the end if new) with `text`, atomically."""
    begin, end = f"<!-- bench: {name} -->", f"<!-- /bench: {name} -->"
    old = path.read_text() if path.exists() else ""
    block = f"{begin}\n{text.rstrip()}\n{end}\n"
    if begin in old and end in old:
        new = old[:old.index(begin)] + block + old[old.index(end) + len(end) + 1:]
    else:
        new = (old.rstrip() + "\n\n" if old.strip() else "") + block
    with atomic_path(path) as tmp:
        tmp.write_text(new)


def script_parser(doc: str) -> argparse.ArgumentParser:
    """A bench script's command line, its module docstring (usage included) as the help."""
    return argparse.ArgumentParser(description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
