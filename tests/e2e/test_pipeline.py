"""End to end: `dvc repro` of all six stages in a fresh git repository, then two
`dvc exp run -S` variants; the tests read the outputs and the paper they leave behind."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, copy_project, tiny_params, write_params
from PIL import Image

from transfer.paper.publish import prose
from transfer.paper.stats import discordant, mcnemar_p, wilson_interval
from transfer.paper.wording import size
from transfer.runtime.files import read_json

pytestmark = pytest.mark.slow
STAGES = ("fetch", "features", "audit", "train", "finetune", "evaluate", "summary", "report")
SECTIONS = ("Abstract", "Introduction", "What we tried and why", "Materials and Methods",
            "Results", "Discussion", "Literature Cited", "Appendix")
ARTICLE = ("Abstract", "Introduction", "What we tried and why", "How it was run", "Results",
           "Discussion", "Literature Cited", "Code and full paper")
ARTICLE_WORDS = 1600  # the article's prose at most (issue 50)


RESULTS = ("metrics/evaluate.json", "dvclive/train/metrics.json",
           "dvclive/finetune/metrics.json", "eval/predictions.csv")
MODELS = ("models/extractor.keras", "models/head.keras", "models/finetuned.keras",
          "models/model.keras", "models/cifar10.h5")


def environment(repo: Path) -> dict[str, str]:
    """This interpreter's tools first on PATH, the repo's sources importable, a git identity."""
    identity = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                for what, value in (("NAME", "test"), ("EMAIL", "test@example.invalid"))}
    inherited = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # unquieted
    return {**inherited, **identity, "PYTHONPATH": str(repo / "src"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def run(repo: Path, *args: str) -> str:
    """Run a command in `repo`; return its output (it must succeed)."""
    out = subprocess.run(args, cwd=repo, env=environment(repo), capture_output=True, text=True)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout + out.stderr


def timed(repo: Path, *args: str) -> tuple[str, float]:
    """`run`, and the seconds it took."""
    start = time.perf_counter()
    output = run(repo, *args)
    return output, time.perf_counter() - start


# TensorFlow's start-up lines (absl's "I0000 ..." format, oneDNN, CUDA, CPU features) and the
# Keras warnings a run used to print.
NOISE = re.compile(r"^[IWEF]\d{4} .*|.*(oneDNN|cuInit|cuda|absl|rebuild TensorFlow|Warning|"
                   r"ran out of data|legacy|Skipping variable loading).*", re.MULTILINE)


def ran(output: str) -> set[str]:
    """The stages that `dvc repro` says it ran."""
    return {stage for stage in STAGES if f"Running stage '{stage}'" in output}


def results(repo: Path) -> dict[str, str]:
    """The run's metrics and predictions files (no timings), and its models' digests, by path."""
    return {**{path: (repo / path).read_text() for path in RESULTS},
            **{path: hashlib.md5((repo / path).read_bytes()).hexdigest() for path in MODELS}}


def new_project(repo: Path, data: Path) -> Path:
    """A committed git + DVC repository of this project on the tiny dataset."""
    repo.mkdir()
    copy_project(repo)
    write_params(repo, **tiny_params(data, data={"val_min": 2}))  # the study's 1% run: 1
    (repo / "report/notes.md").write_text("## Motivation\nTo test the paper.\n\n"  # per class
                                          "## lr-high\nA learning rate ten times higher.\n\n"
                                          "## data-10\nA tenth of the data.\n")
    run(repo, "git", "init", "-q", "-b", "main")
    run(repo, "dvc", "init", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "tiny project")
    return repo


@dataclass
class Project:
    """The repository after the runs, with what each command printed."""

    repro: str
    repo: Path
    single_paper: str
    status: str
    baseline: dict[str, str]
    variants: list[str]
    variant_seconds: list[float]
    diff: str


VARIANTS = {"lr-high": "train.learning_rate=0.01", "dropout-half": "train.dropout=0.5"}


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_folder) -> Project:
    """`dvc repro` (its paper kept), commit the results, then two variants of `train` queued
    and run by DVC's queue, the workspace's paper rendered again as docs/paper.md says, and
    `python -m transfer.diff` of the two variants."""
    repo = new_project(tmp_path_factory.mktemp("e2e") / "repo", tiny_folder)
    repro = run(repo, "dvc", "repro")
    single_paper = (repo / "report/paper.md").read_text()
    status = run(repo, "dvc", "status")
    baseline = results(repo)
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "baseline results")
    for name, change in VARIANTS.items():
        run(repo, "dvc", "exp", "run", "--queue", "-n", name, "-S", change)
    _, seconds = timed(repo, "dvc", "exp", "run", "--run-all")
    variants = [run(repo, "dvc", "queue", "logs", name) for name in VARIANTS]
    run(repo, "dvc", "repro", "--force", "--single-item", "report")
    diff = run(repo, sys.executable, "-m", "transfer.diff", *VARIANTS)
    return Project(repro, repo, single_paper, status, baseline, variants,
                   [seconds / len(VARIANTS)] * len(VARIANTS), diff)


def paper_sections(paper: str) -> dict[str, str]:
    """The text under each `## ` heading."""
    parts = re.split(r"^## (.+)$", paper, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_repro_runs_every_stage_and_leaves_it_clean(project, tiny_folder):
    """All stages run, outputs are complete and consistent, `dvc status` is clean."""
    repo = project.repo
    assert ran(project.repro) == set(STAGES)
    assert "up to date" in project.status
    noise = [m.group(0) for m in NOISE.finditer(project.repro)]
    assert not noise, "noise in the console:\n" + "\n".join(noise)
    prepared = {s: np.load(repo / f"data/prepared/{s}_y.npy") for s in ("train", "val", "test")}
    assert {s: len(y) for s, y in prepared.items()} == {"train": 18, "val": 6, "test": 9}
    for split, labels in prepared.items():
        assert np.array_equal(np.load(repo / f"features/{split}_y.npy"), labels)
        assert np.load(repo / f"features/{split}_x.npy").dtype == np.float16
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    for model in ("head", "finetuned"):
        assert metrics[model]["count"] == 9
        assert set(metrics[model]["per_class_accuracy"]) == {"cat", "dog", "fox"}
        assert 0 <= metrics[model]["accuracy"] <= 1 and "top_3_accuracy" in metrics[model]
    with (repo / "eval/predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9 and {r["actual"] for r in rows} == {"cat", "dog", "fox"}
    for path in ("models/model.keras", "models/cifar10.h5", "dvclive/train/metrics.json",
                 "dvclive/finetune/metrics.json", "metrics/features.json"):
        assert (repo / path).is_file(), path
    head_epochs = json.loads((repo / "dvclive/train/metrics.json").read_text())["epochs"]
    steps = (repo / "dvclive/finetune/plots/metrics/eval/accuracy.tsv").read_text().split()[2::2]
    assert steps[0] == str(head_epochs), "fine-tuning epochs must continue the head's"
    plots = json.loads(run(repo, "dvc", "plots", "show", "--json"))
    assert "Confusion matrix (test set)" in json.dumps(plots)


def test_train_change_reruns_only_what_depends_on_it(project):
    """A `train` param reruns train, finetune, evaluate and report, never fetch or features."""
    for output in project.variants:
        assert ran(output) == {"train", "finetune", "evaluate", "summary", "report"}
    assert "up to date" in run(project.repo, "dvc", "status")


def stale_stages(repo: Path) -> set[str]:
    """The stages `dvc status` names as changed."""
    return set(json.loads(run(repo, "dvc", "status", "--json")))


@pytest.mark.parametrize(("edited", "stale"), [
    ("src/transfer/training/distribute.py", {"train", "finetune"}),
    ("src/transfer/training/activation_cache.py", {"finetune"}),  # training only
    ("src/transfer/data/images.py", {"fetch"}),  # decoding images
    ("src/transfer/runtime/paths.py", set(STAGES)),
    ("src/transfer/paper/wording.py", {"report"}),  # the paper's sentences (backbone origin)
    ("report/templates/paper.md.j2", {"report"}),
])
def test_status_names_exactly_the_stages_an_edit_reaches(project, edited, stale):
    """Editing a file makes `dvc status` name the stages that import or read it, and no other;
    undoing the edit makes the pipeline up to date again."""
    path = project.repo / edited
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"\n" + (b"{# edited #}" if edited.endswith(".j2")
                                              else b"# edited") + b"\n")
        assert stale_stages(project.repo) == stale
    finally:
        path.write_bytes(original)
    assert stale_stages(project.repo) == set()


def test_fresh_clone_pulls_every_output_from_a_remote_and_recomputes_nothing(project, tmp_path):
    """`dvc push` to a local-directory remote, `git clone` and `dvc pull` elsewhere: the clone is
    up to date and `dvc repro` runs nothing. Features extracted there in two shards and merged
    are the ones pulled: after `dvc commit features`, every stage but `report` is still up to
    date (the extractor is saved byte for byte as before), and the paper says how they were
    extracted."""
    repo, clone, store = project.repo, tmp_path / "clone", str(tmp_path / "store")
    # docs/speed.md commits .dvc/config; here a new commit would hide the experiments that later
    # tests read (they are based on the baseline commit), so each side configures the remote.
    run(repo, "dvc", "remote", "add", "--local", "-d", "store", store)
    run(repo, "dvc", "push", "--all-branches")
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    run(clone, "dvc", "remote", "add", "-d", "store", store)
    run(clone, "dvc", "pull")
    assert "Data and pipelines are up to date" in run(clone, "dvc", "status")
    repro = run(clone, "dvc", "repro")
    assert not ran(repro) and repro.count("didn't change, skipping") == len(STAGES)
    assert results(clone) == project.baseline

    shutil.rmtree(clone / "features")
    (clone / "models/extractor.keras").unlink()
    (clone / "metrics/time/features.json").unlink()  # the merge writes the stage's record
    shards = [subprocess.Popen([sys.executable, "-m", "transfer.feature_shards", "--shard",
                                f"{i}/2"],
                               cwd=clone, env=environment(clone), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True) for i in range(2)]
    errors = [shard.communicate()[1] for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0], errors
    run(clone, sys.executable, "-m", "transfer.feature_shards", "--merge", "2")
    run(clone, "dvc", "commit", "--force", "features")
    status = run(clone, "dvc", "status", "--with-deps", "evaluate")
    assert "Data and pipelines are up to date" in status, status
    run(clone, sys.executable, "-m", "transfer.report")
    assert "added up over 2 shards" in (clone / "report/paper.md").read_text()


def test_paper_has_every_section_and_figure(project):
    """Title, the journal sections in order, and every figure file referenced and present;
    the picture at the top before the abstract."""
    report = project.repo / "report"
    paper = (report / "paper.md").read_text()
    assert paper.startswith("# ")
    positions = [paper.index(f"\n## {name}\n") for name in SECTIONS]
    assert positions == sorted(positions)
    linked = set(re.findall(r"\]\((figures/[^)]+\.png)\)", paper))
    linked_medium = set(re.findall(r"\]\((figures/[^)]+\.png)\)",
                                   (report / "medium.md").read_text()))
    on_disk = {f"figures/{p.name}" for p in (report / "figures").iterdir()}
    assert len(linked) >= 6 and linked <= on_disk and linked_medium <= on_disk
    assert linked | linked_medium == on_disk
    for name in ("hero", "examples", "learning-curves", "confusion-matrix",
                 "per-class-accuracy", "experiments", "class-maps"):
        assert f"figures/{name}.png" in linked
    assert paper.index("figures/hero.png") < paper.index("## Abstract")
    assert "### Motivation\n\nTo test the paper." in paper
    assert "**lr-high.** A learning rate ten times higher." in paper
    cache = read_json(project.repo / "metrics/resolved/finetune.json")["how"]["cache_bytes"]
    assert cache > 0 and (f"computed once for every training image and its mirror and cached, "
                          f"{size(cache)} on disk") in paper


def test_article_is_the_story_and_the_paper_the_record(project):
    """The article (site, dev.to, Medium) has its sections in order, a "What we tried and
    why" entry per choice, at most ARTICLE_WORDS words of prose, a link to the full paper and
    no parameter dump, hash table or version list; the paper keeps all of them."""
    report = project.repo / "report"
    paper = (report / "paper.md").read_text()
    for name in ("devto.md", "medium.md"):
        article = (report / name).read_text()
        positions = [article.index(f"\n## {section}\n") for section in ARTICLE]
        assert positions == sorted(positions), name
        tried = article.split("## What we tried and why\n")[1].split("\n## ")[0]
        for choice in ("Backbone", "Input size", "Layers trained", "Cached cut", "Epochs",
                       "Augmentation", "Test-time flips", "Calibration"):
            assert f"- **{choice}: " in tried, (name, choice)
        assert len(prose(article).split()) <= ARTICLE_WORDS, name
        assert "](paper.pdf)" in article or "paper.pdf)" in article
        for record in ("```yaml", "dvc.lock", "## Appendix", "Materials and Methods",
                       "TensorFlow " + version("tensorflow")):
            assert record not in article, (name, record)
    for record in ("```yaml", "dvc.lock", "## Appendix", "TensorFlow " + version("tensorflow")):
        assert record in paper, record
    site = report / "site"
    assert (site / "paper.pdf").read_bytes() == (report / "paper.pdf").read_bytes()
    assert 'href="paper.pdf"' in (site / "index.html").read_text()


def predictions(project) -> list[dict]:
    """The test set's predictions, as `evaluate` wrote them."""
    with (project.repo / "eval/predictions.csv").open() as f:
        return list(csv.DictReader(f))


def test_discussion_says_only_what_its_numbers_bear(project):
    """The Discussion's verdict on fine-tuning follows McNemar's test; the flips' share of the
    gain is the difference of the two fine-tuned accuracies the results table gives."""
    paper = (project.repo / "report/paper.md").read_text()
    discussion = paper.split("## Discussion\n")[1].split("## Literature Cited")[0]
    tested = read_json(project.repo / "metrics/evaluate.json")
    head, tuned, plain = (tested[m] for m in ("head", "finetuned", "finetuned_unflipped"))
    b, c = discordant([r["head_predicted"] == r["actual"] for r in predictions(project)],
                      [r["predicted"] == r["actual"] for r in predictions(project)])
    significant = mcnemar_p(len(b), len(c)) < 0.05
    gain = tuned["accuracy"] - head["accuracy"]
    itself, flips = (100 * (a["accuracy"] - b["accuracy"]) for a, b in ((plain, head),
                                                                         (tuned, plain)))
    if read_json(project.repo / "dvclive/finetune/metrics.json").get("improved") is False:
        assert "so the model kept is the head on the frozen features" in discussion
        assert "The gain from fine-tuning holds" not in discussion
    elif significant and gain > 0:
        assert "The gain from fine-tuning holds" in discussion
    elif not significant:
        assert "Fine-tuning made no difference this test set can tell" in discussion
        assert "The gain from fine-tuning holds" not in discussion
    else:
        assert "Fine-tuning made the model worse" in discussion
    assert f"test-time flips for {flips:+.1f}" in discussion or \
        f"test-time flips change its test accuracy by {flips:+.1f} points" in discussion
    if "so the model kept is the head" not in discussion:
        assert f"Fine-tuning itself accounts for {itself:+.1f} points" in discussion
        assert f"| fine-tuned, no flips | {100 * plain['accuracy']:.1f}% |" in paper


def test_abstract_numbers_are_the_metrics(project):
    """Accuracies, their intervals, counts and throughput in the abstract equal the files';
    its first 60 words give the headline accuracy, the baseline it improved on, the hardware
    and the run's time."""
    repo = project.repo
    abstract = paper_sections((repo / "report/paper.md").read_text())["Abstract"]
    metrics = json.loads((repo / "metrics/evaluate.json").read_text())
    features = json.loads((repo / "metrics/features.json").read_text())
    summary = json.loads((repo / "metrics/summary.json").read_text())
    opening = " ".join(abstract.split("**", 2)[-1].split()[:60])  # after the random-weights note
    for needed in (f"{100 * metrics['finetuned']['accuracy']:.1f}%",
                   f"{100 * metrics['head']['accuracy']:.1f}%", features["device"],
                   f"took {summary['minutes']:.1f} min"):
        assert needed in opening, (needed, opening)
    for model in ("head", "finetuned"):
        scores = metrics[model]
        low, high = wilson_interval(scores["correct"], scores["count"])
        assert (f"{100 * scores['accuracy']:.1f}% (95% CI {100 * low:.1f}% – {100 * high:.1f}%)"
                in abstract)
    gain = metrics["finetuned"]["accuracy"] - metrics["head"]["accuracy"]
    if json.loads((repo / "dvclive/finetune/metrics.json").read_text()).get("improved"):
        assert f"{100 * gain:+.1f} percentage points" in abstract
    else:  # the head is the model kept: no gain to state
        assert "never beat it on the validation images, so it is the model kept" in abstract
    assert f"{features['images']} images ({features['images_per_second']} images/s" in abstract
    assert "with 18 training and 6 validation images" in abstract
    assert "of the 9 " in abstract
    assert "weights were random (`model.weights=none`)" in abstract
    assert "not a transfer-learning result" in abstract


def test_html_is_standalone(project):
    """Every image is embedded and the only links are the literature's."""
    html = (project.repo / "report/paper.html").read_text()
    refs = yaml.safe_load((ROOT / "report/templates/references.yaml").read_text())["references"]
    literature = {r["url"] for r in refs.values()}
    sources = re.findall(r'\bsrc="([^"]*)"', html)
    links = re.findall(r'\bhref="([^"]*)"', html)
    assert len(sources) >= 6 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert links and set(links) <= literature
    assert not re.search(r"<(link|script|iframe)\b|@import|url\(", html)
    assert "<table>" in html and "<style>" in html


def test_pdf_is_the_paper_typeset(project):
    """paper.pdf (Typst) is a PDF whose text holds the title, every section heading, every
    heading of the Markdown paper and the abstract's accuracies as the metrics files give
    them, with every figure of the paper embedded as an image. (Two renders giving the same
    bytes: tests/unit/test_report.py.)"""
    from pypdf import PdfReader

    report = project.repo / "report"
    assert (report / "paper.pdf").read_bytes().startswith(b"%PDF-")
    reader = PdfReader(report / "paper.pdf")
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    paper = (report / "paper.md").read_text()
    title = paper.splitlines()[0].removeprefix("# ")
    assert reader.metadata.title == title and title in text
    for heading in re.findall(r"^#{2,4} (.+)$", paper, flags=re.M):
        assert heading.replace("`", "") in text, heading
    positions = [text.index(name) for name in SECTIONS]
    assert positions == sorted(positions)
    metrics = json.loads((project.repo / "metrics/evaluate.json").read_text())
    for model in ("head", "finetuned"):
        low, high = wilson_interval(metrics[model]["correct"], metrics[model]["count"])
        assert (f"{100 * metrics[model]['accuracy']:.1f}% (95% CI {100 * low:.1f}% – "
                f"{100 * high:.1f}%)") in text
    figures = re.findall(r"^!\[[^\]]*\]\((figures/[^)]+)\)$", paper, flags=re.M)
    images = [image for page in reader.pages for image in page.images]
    assert len(figures) >= 6 and len(images) == len(figures)
    assert sorted(image.image.size for image in images) == sorted(
        Image.open(report / figure).size for figure in figures)


def test_site_bundle_links_only_its_own_files(project):
    """report/site/: index.html is the article, showing every figure of it from a PNG beside
    it, no `data:` URI, no absolute path; every file in the folder is one it shows, or the
    full paper it links to."""
    site = project.repo / "report/site"
    html = (site / "index.html").read_text()
    sources = re.findall(r'\bsrc="([^"]*)"', html)
    article = (project.repo / "report/devto.md").read_text()
    assert sources == re.findall(r"^!\[[^\]]*\]\((figures/[^)]+)\)$", article, flags=re.M)
    assert not re.search(r'(src|href)="(data:|/|file:)|url\(', html)
    assert all(not re.match(r"\w+:", link) or link.startswith("https://")
               for link in re.findall(r'\bhref="([^"]*)"', html))
    files = {str(p.relative_to(site)) for p in site.rglob("*") if p.is_file()}
    assert files == {"index.html", "paper.pdf", *sources}
    for source in sources:
        assert (site / source).read_bytes() == (project.repo / "report" / source).read_bytes()


def test_devto_variant_has_front_matter(project):
    """report/devto.md: YAML front matter (title, description, tags, published: false), then
    the article, which opens as the paper does (subtitle, author, date, the picture)."""
    text = (project.repo / "report/devto.md").read_text()
    _, matter, body = text.split("---\n", 2)
    front = yaml.safe_load(matter)
    paper = (project.repo / "report/paper.md").read_text()
    title, rest = paper.split("\n", 1)
    assert front["title"] == title.removeprefix("# ") and front["published"] is False
    assert front["tags"] == "machinelearning, keras, tensorflow, python"
    assert "test accuracy for a head on the frozen base's features" in front["description"]
    opening = rest.split("## Abstract")[0]  # the abstract itself: each cut its own
    assert body.strip().startswith(opening.strip())


def test_medium_variant_shows_tables_as_images(project):
    """No Markdown table in the Medium variant: each table is a picture instead."""
    medium = (project.repo / "report/medium.md").read_text()
    assert not re.search(r"^\s*\|.*\|\s*$", medium, flags=re.M)
    assert "![Table 1](figures/table-results.png)" in medium
    assert re.search(r"^\| model \| test accuracy", (project.repo / "report/paper.md")
                     .read_text(), flags=re.M)


def test_experiment_table_lists_both_queued_variants(project):
    """A single run's paper has no Experiments subsection; the workspace's paper rendered
    after the queue lists the committed run (this one) and both queued variants, each with
    its values of the params in which the runs differ, and their headline numbers."""
    assert "### Experiments" not in project.single_paper
    paper = (project.repo / "report/paper.md").read_text()
    table = paper.split("### Experiments\n")[1].split("\n\n")[1]
    rows = {row.split(" | ")[0].strip("| "): row.split(" | ")[1:]
            for row in table.splitlines()[2:]}
    assert {name: cells[0] for name, cells in rows.items()} == {
        "main (this run)": "train.learning_rate=0.001, train.dropout=0.2",
        "lr-high": "train.learning_rate=0.01, train.dropout=0.2",
        "dropout-half": "train.learning_rate=0.001, train.dropout=0.5"}
    for name in VARIANTS:
        summary = json.loads(committed(project, experiment_rev(project, name),
                                       "metrics/summary.json"))
        assert rows[name][4] == f"{100 * summary['test_acc']:.1f}%", name
    assert "](figures/experiments.png)" in paper


def experiment_rev(project: Project, name: str) -> str:
    """The commit of experiment `name`."""
    import dvc.api

    return next(row["rev"] for row in dvc.api.exp_show(repo=str(project.repo))
                if row["Experiment"] == name)


def test_diff_of_the_two_variants(project):
    """`python -m transfer.diff lr-high dropout-half` writes the changed params, McNemar's line
    with the counts the two experiments' predictions give, the fixed and broken pictures that
    exist, and the paper's changed sentences, in Markdown and standalone HTML."""
    out = project.repo / "report/diff"
    text = (out / "diff.md").read_text()
    assert "| `train.learning_rate` | `0.01` | `0.001` |" in text
    assert "| `train.dropout` | `0.2` | `0.5` |" in text
    answers = [read_predictions(project, name) for name in VARIANTS]
    right = [[r["predicted"] == r["actual"] for r in rows] for rows in answers]
    fixed = sum(b and not a for a, b in zip(*right))
    broken = sum(a and not b for a, b in zip(*right))
    assert (f"dropout-half gets {fixed} right that lr-high got wrong (fixed) and {broken} "
            f"wrong that lr-high got right (broken). McNemar's exact test: ") in text
    for name, count in (("fixed", fixed), ("broken", broken)):
        assert (out / f"figures/{name}.png").is_file() == (count > 0), name
    paper = text.split("## The paper\n")[1]
    assert re.search(r"^- \*\*lr-high:\*\* \| train \| .*learning_rate 0\.01, dropout 0\.2,", paper,
                     flags=re.M), paper
    assert re.search(r"^- \*\*dropout-half:\*\* \| train \| .*learning_rate 0\.001, dropout 0\.5,",
                     paper, flags=re.M), paper
    html = (out / "diff.html").read_text()
    assert "McNemar" in html and not re.search(r'src="(?!data:)', html)
    assert "diff: report/diff/diff.md" in project.diff


def read_predictions(project: Project, name: str) -> list[dict]:
    """Experiment `name`'s predictions, from DVC's cache."""
    import dvc.api

    text = dvc.api.read("eval/predictions.csv", rev=experiment_rev(project, name),
                        repo=str(project.repo))
    return list(csv.DictReader(io.StringIO(text)))


def test_killed_repro_leaves_nothing_trusted_and_resumes_to_the_same_results(
        project, tmp_path, tiny_folder):
    """`kill -9` of `dvc repro` while `features` writes its outputs: DVC does not take the stage
    as done, the rerun finishes it, and the results equal the uninterrupted run's byte for byte
    (same seed on the same CPU: this is also the determinism check across two repositories)."""
    repo = new_project(tmp_path / "repo", tiny_folder)
    repro = subprocess.Popen(["dvc", "repro"], cwd=repo, env=environment(repo),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + 300
    while not list(repo.glob(".features.*.tmp")):  # the stage is writing its outputs
        assert repro.poll() is None and time.monotonic() < deadline, "features never started"
        time.sleep(0.05)
    os.killpg(repro.pid, signal.SIGKILL)
    repro.wait()
    assert not (repo / "features").exists()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"fetch"}
    resumed = run(repo, "dvc", "repro")
    assert ran(resumed) == set(STAGES) - {"fetch"}
    assert results(repo) == project.baseline
    assert not list(repo.glob("**/.*.tmp*")), "a killed stage's temporary output was left behind"


@pytest.fixture(scope="module")
def switched_back(project) -> tuple[str, float]:
    """A variant applied to the workspace (`dvc exp apply`), then params.yaml back to the
    committed baseline and `dvc repro` (output, seconds). Changes the workspace, so only the
    last tests of this module use it."""
    run(project.repo, "dvc", "exp", "apply", "dropout-half")
    run(project.repo, "git", "checkout", "params.yaml")
    return timed(project.repo, "dvc", "repro")


def test_params_already_run_are_restored_from_the_run_cache(project, switched_back):
    """Going back to a params set already run checks its outputs out of DVC's run cache in a
    fraction of the time the variants took to compute theirs."""
    output, seconds = switched_back
    assert not ran(output)
    for stage in ("train", "finetune", "evaluate", "summary", "report"):
        assert f"Stage '{stage}' is cached - skipping run" in output
    assert results(project.repo) == project.baseline
    print(f"run cache: {seconds:.1f} s, variants computed in "
          f"{', '.join(f'{s:.1f}' for s in project.variant_seconds)} s")
    assert seconds < 0.5 * min(project.variant_seconds), (seconds, project.variant_seconds)


@pytest.fixture(scope="module")
def study(project, switched_back) -> dict:
    """The default study (study/runs.yaml: 1%, 10% and 100% of the training data) run by its
    command with two queue workers, then once more with nothing changed. Returns both outputs,
    the paper's files after each, and the commit of every run by its name in `logs/`
    (`workspace` is the committed baseline)."""
    import dvc.api

    repo = project.repo
    command = (sys.executable, "-m", "transfer.study", "--jobs", "2")
    first = run(repo, *command)
    papers = [{p: (repo / p).read_bytes() for p in PAPERS}]
    again = run(repo, *command)
    papers.append({p: (repo / p).read_bytes() for p in PAPERS})
    revs = {row["Experiment"]: row["rev"] for row in dvc.api.exp_show(repo=str(repo))}
    return {"first": first, "again": again, "papers": papers, "revs": {"workspace": "HEAD", **revs},
            "results": json.loads((repo / "study/results.json").read_text())}


PAPERS = ("report/paper.md", "report/paper.html", "report/paper.pdf")
STUDY = ("data-1", "data-10", "data-100")


def committed(project: Project, rev: str, path: str) -> str:
    """A file as committed in `rev`."""
    return run(project.repo, "git", "show", f"{rev}:{path}")


def test_study_runs_are_experiments_and_a_rerun_recomputes_nothing(project, study):
    """Each run of the study is an ordinary experiment of the commit, queued and run by DVC;
    the one equal to the committed baseline runs no stage; the gathered results are the
    experiments' own metrics; the second call queues nothing and `dvc repro` runs nothing."""
    import dvc.api

    repo = project.repo
    assert all(f"study: {name} queued" in study["first"] for name in STUDY)
    assert set(STUDY) <= set(study["revs"])
    logs = run(repo, "dvc", "queue", "logs", "data-100")  # the committed baseline's params
    assert "Running stage" not in logs and logs.count("didn't change, skipping") == 7, logs
    rows = {r["name"]: r for r in study["results"]["runs"]}
    for name in STUDY:
        metrics = json.loads(dvc.api.read("metrics/evaluate.json", rev=study["revs"][name],
                                          repo=str(repo)))
        assert rows[name]["finetuned"]["accuracy"] == metrics["finetuned"]["accuracy"]
        assert rows[name]["finetuned"]["count"] == 9
        assert rows[name]["this_paper"] == (name == "data-100")
    assert [r["fraction"] for r in study["results"]["runs"]] == [0.01, 0.1, 1.0]
    assert len(study["results"]["pairs"]) == 3  # one test set
    assert all(f"study: {name} is up to date" in study["again"] for name in STUDY)
    assert "study/results.json unchanged" in study["again"] and not ran(study["again"])
    assert study["papers"][0] == study["papers"][1]


def test_study_is_in_every_paper(project, study):
    """The study's table (each run with its params, accuracies and Wilson interval, this
    paper's run marked), its notes, its figure and one McNemar line per pair are in the
    Markdown, HTML and PDF papers; the experiment table does not list the study's runs."""
    from pypdf import PdfReader

    report = project.repo / "report"
    paper = (report / "paper.md").read_text()
    section = paper.split("### Study\n")[1].split("### Experiments\n")[0]
    rows = {r["name"]: r for r in study["results"]["runs"]}
    for name, fraction in zip(STUDY, ("0.01", "0.1", "1")):
        tuned = rows[name]["finetuned"]
        low, high = wilson_interval(tuned["correct"], tuned["count"])
        label = f"{name} (this paper)" if name == "data-100" else name
        assert (f"| {label} | data.fraction={fraction} | "
                f"{100 * rows[name]['head']['accuracy']:.1f}% | {100 * tuned['accuracy']:.1f}% | "
                f"{100 * low:.1f}% – {100 * high:.1f}% |") in section, name
    assert "**data-10.** A tenth of the data." in section and paper.count("A tenth") == 1
    assert "](figures/study.png)" in section and (report / "figures/study.png").is_file()
    assert len(re.findall(r"^- data-\d+ against data-\d+: ", section, flags=re.M)) == 3
    experiments = paper.split("### Experiments\n")[1].split("## Discussion")[0]
    assert "data-1" not in experiments and "lr-high" in experiments
    html = (report / "paper.html").read_text()
    assert "The study’s runs" in html or "The study's runs" in html
    assert re.search(r"<td[^>]*>data-100 \(this paper\)</td>", html)
    assert html.count('alt="Test accuracy of the study') == 1
    reader = PdfReader(report / "paper.pdf")
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert "Study" in text and "data-100 (this paper)" in text and "A tenth of the data." in text
    figures = re.findall(r"^!\[[^\]]*\]\((figures/[^)]+)\)$", paper, flags=re.M)
    assert len([i for page in reader.pages for i in page.images]) == len(figures)


def tensorboard_accuracy(run_dir: Path) -> tuple[list[int], list[float]]:
    """Epochs and validation accuracies as TensorBoard reads them from a run's event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    events = EventAccumulator(str(run_dir / "validation"), size_guidance={"tensors": 0}).Reload()
    scalars = events.Tensors("epoch_accuracy")
    return [e.step for e in scalars], [float(make_ndarray(e.tensor_proto)) for e in scalars]


def test_tensorboard_gathers_both_phases_of_every_run(project, study):
    """`logs/` of the main repository holds `train` and `finetune` logs of the plain repro and of
    every experiment that trained, queued ones included (data-100 came from the run cache), and
    their curves are the ones DVCLive recorded."""
    logs = project.repo / "logs"
    assert {p.name for p in logs.iterdir()} == {"workspace", "lr-high", "dropout-half",
                                                "data-1", "data-10"}
    queued = study["revs"]
    for name in ("lr-high", "data-10", "workspace"):
        for stage in ("train", "finetune"):
            rows = committed(project, queued[name],
                             f"dvclive/{stage}/plots/metrics/eval/accuracy.tsv").split()[2:]
            steps, accuracies = tensorboard_accuracy(logs / name / stage)
            assert steps == [int(step) for step in rows[::2]], (name, stage)
            assert accuracies == pytest.approx([float(a) for a in rows[1::2]]), (name, stage)
