"""The README is a front page whose links all resolve, and its test command is the one CI runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_readme_is_a_front_page_with_reference_pages():
    """At most 150 lines, and at least three pages under docs/, each linked from it."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert len(pages) >= 3
    for page in pages:
        assert f"](docs/{page}" in readme, f"README does not link docs/{page}"


def test_every_relative_link_resolves():
    """Each link or image of README.md and docs/*.md that is not a URL names an existing file
    (the part before any `#`)."""
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            path = target.split("#", 1)[0]
            if re.match(r"[a-z]+:", target) or not path:
                continue
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_readme_test_command_is_what_ci_runs():
    """The README's test command, `make test`, is the one `.ci/run` calls."""
    readme = (ROOT / "README.md").read_text()
    assert "```bash\nmake test\n```" in readme
    assert "make test" in (ROOT / ".ci/run").read_text().splitlines()


# --- every command the docs give, run as written ----------------------------------------------

PAGE_ORDER = ("README.md", "docs/pipeline.md", "docs/study.md", "docs/paper.md",
              "docs/speed.md", "docs/troubleshooting.md", "docs/results.md")
COMMAND = re.compile(r"^(?:[A-Z]+=\S+ )*(?:\.venv/bin/(?:dvc|python) |make )")
# Commands of the docs that this test does not run, and why. Any other command in a code block
# runs; a new one that cannot must be added here with its reason.
EXCEPTED = {
    "make repro": "downloads CIFAR-10 through keras.datasets (the network)",
    "make test": "the test suite itself",
    "make test-fast": "the test suite itself",
    ".venv/bin/dvc exp run -S train.strategy=mirrored -S finetune.strategy=mirrored":
        "needs several GPUs",
    ".venv/bin/dvc repro train": "the chief of a run over several hosts",
    ".venv/bin/python -m transfer.train": "a worker of a run over several hosts",
    ".venv/bin/dvc remote add -d store s3://my-bucket/transfer": "the network",
    ".venv/bin/dvc push": "a remote on the network",
    ".venv/bin/dvc pull": "a remote on the network",
    ".venv/bin/python -m bench.assignment_check": "checks the full CIFAR-10 run's 87%",
    "make venv": "the set-up step, done before the commands (the clone's .venv)",
}


def documented_commands() -> list[str]:
    """Each command line of the docs' bash blocks, in page order, comments stripped, each once."""
    commands = []
    for page in PAGE_ORDER:
        for block in re.findall(r"```bash\n(.*?)```", (ROOT / page).read_text(), re.S):
            for line in block.splitlines():
                command = re.sub(r"\s+#.*$", "", line).strip()
                if COMMAND.match(command) and command not in commands:
                    commands.append(command)
    return commands


def test_docs_pages_are_all_in_the_run_order():
    """Every Markdown page is in PAGE_ORDER, so none of its commands escapes the test below."""
    pages = {"README.md", *(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md"))}
    assert pages == set(PAGE_ORDER)


@pytest.fixture(scope="module")
def documented_run(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """A fresh copy of the project (what `git clone` gives, committed) after the set-up step
    (its .venv: this one), beside `../shared/data/cifar10-jpg.tar.gz`, a generated CIFAR-like
    archive; then every documented command but EXCEPTED's, verbatim, in page order, with the
    environment not activated. Returns each command's result."""
    from conftest import CIFAR_CLASSES, make_image_folder

    top = tmp_path_factory.mktemp("docs")
    folder = make_image_folder(top / "cifar" / "cifar10", CIFAR_CLASSES, 24, 2, size=32,
                               suffix=".jpg")
    (top / "shared/data").mkdir(parents=True)
    shutil.make_archive(str(top / "shared/data/cifar10-jpg"), "gztar", folder.parent)
    clone = top / "project"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    installed = (ROOT / ".venv/.installed").stat().st_mtime
    os.utime(clone / "pyproject.toml", (installed - 1, installed - 1))  # make venv: up to date
    venv_bin = str(ROOT / ".venv/bin")
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    env.update({f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                for what, value in (("NAME", "test"), ("EMAIL", "test@example.invalid"))})
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "clone"]):
        subprocess.run(command, cwd=clone, env=env, check=True)
    results = {}
    for command in documented_commands():
        if command in EXCEPTED:
            continue
        results[command] = subprocess.run(command, shell=True, cwd=clone, env=env,
                                          capture_output=True, text=True)
        if results[command].returncode != 0:
            break  # the rest would fail for this one's sake
    return results


@pytest.mark.slow
def test_every_documented_command_runs_as_written(documented_run):
    """Each command of README.md and docs/ that is not EXCEPTED succeeds as written in a fresh
    clone with the environment not activated, data paths pointing at a generated archive."""
    failed = {c: (r.stdout + r.stderr)[-3000:] for c, r in documented_run.items()
              if r.returncode != 0}
    assert failed == {}
    assert set(documented_run) == set(documented_commands()) - set(EXCEPTED)


@pytest.mark.slow
def test_first_run_and_comparison_read_at_a_glance(documented_run):
    """The clone's first `dvc exp run` prints no DVC warning about outputs it has not made
    yet, and `dvc exp show` at 160 columns shows the fine-tuned test accuracy column."""
    first = documented_run[".venv/bin/dvc exp run -S data.source=folder "
                           "-S data.path=../shared/data/cifar10-jpg.tar.gz"]
    assert "No file hash info" not in first.stdout + first.stderr
    show = documented_run["COLUMNS=160 .venv/bin/dvc exp show --no-pager --only-changed"].stdout
    assert re.search(r"^\s+Experiment\s.*\btest_acc\b", show, flags=re.M), show
