"""The paper's statistics, notes, literature and publishing formats, and a paper rendered
outside any git repository."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import shutil
from datetime import date
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml
from conftest import ROOT, run_stages, tiny_params, write_params
from pydantic import BaseModel

from transfer.data.cifar10 import CLASSES
from transfer.paper.notes import read_notes
from transfer.paper.publish import cover, devto, page
from transfer.paper.run import dataset_name
from transfer.paper.stats import mcnemar_p, wilson_interval
from transfer.paper.typeset import parts, typst_markup
from transfer.paper.wording import fit_sentence, size
from transfer.params.catalogue import FAMILIES
from transfer.params.data import DataParams
from transfer.params.report import ReportParams
from transfer.params.whole import Params, load_params
from transfer.report import paper, template_names
from transfer.runtime.errors import ParamError, UserError


def test_wilson_interval_by_hand():
    """0 of 10: the interval is [0, z^2 / (n + z^2)]; 5 of 10 is symmetric about 1/2."""
    z2 = 1.959963984540054 ** 2
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    low, high = wilson_interval(5, 10)
    assert low + high == pytest.approx(1.0) and low == pytest.approx(0.236593, abs=1e-6)



def test_mcnemar_by_hand():
    """1 vs 5 discordant pairs: 2 * P(X <= 1), X ~ Binomial(6, 1/2) = 2 * 7/64."""
    assert mcnemar_p(1, 5) == mcnemar_p(5, 1) == pytest.approx(14 / 64)
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(0, 10) == pytest.approx(2 / 1024)



def test_sizes_in_the_largest_unit_below_1024():
    """Bytes as the paper writes a cache's size."""
    assert [size(n) for n in (12_288, 262_563_840, 3_951_369_912, 2**30)] == [
        "12.0 KiB", "250.4 MiB", "3.68 GiB", "1.00 GiB"]


def test_read_notes_keeps_filled_sections(tmp_path):
    """`#` and `##` headings (and underlined titles) start sections, deeper ones move a level
    down; comments and empty sections are dropped, fenced code is kept as it is; text before
    the first section is one error naming its line."""
    notes = tmp_path / "notes.md"
    notes.write_text("<!-- guide\n## Commented\nhidden -->\n## Motivation\nWhy we ran it.\n\n"
                     "### Detail\nMore.\n\n## Empty\n<!-- nothing -->\n# lr-high\nToo fast.\n"
                     "```\n# a comment, not a heading\n```\nCaveats\n=======\nFew runs.\n")
    assert read_notes(notes) == {
        "Motivation": "Why we ran it.\n\n#### Detail\nMore.",
        "lr-high": "Too fast.\n```\n# a comment, not a heading\n```", "Caveats": "Few runs."}
    assert read_notes(tmp_path / "missing.md") == {}
    notes.write_text("<!-- a guide -->\n\nPreamble.\n## Motivation\nWhy.\n")
    with pytest.raises(UserError, match=r"notes.md:3: text before the first '## Section' "
                                        r"heading has no place in the paper \('Preamble.'\)"):
        read_notes(notes)


def test_every_backbone_family_has_its_paper():
    """references.yaml names a real reference for every keras.applications family."""
    data = yaml.safe_load((ROOT / "report/templates/references.yaml").read_text())
    for module in FAMILIES:
        entry = data["references"][data["backbones"][module]]
        assert entry["url"].startswith("https://") and entry["cite"] and entry["text"]


@pytest.fixture(scope="module")
def skipped_run(tmp_path_factory, tiny_folder) -> Path:
    """A project run from fetch to evaluate once, outside git, fine-tuning skipped; each test
    copies it, writes its own notes and renders the paper."""
    root = tmp_path_factory.mktemp("skipped")
    with contextlib.chdir(root):
        write_params(root, **tiny_params(tiny_folder, finetune={"layers": 0},
                                         report={"author": "Ada Lovelace", "date": "1843"}))
        run_stages("fetch", "features", "audit", "train", "finetune", "evaluate")
    shutil.copytree(ROOT / "report/templates", root / "report/templates")
    return root


def test_paper_outside_git_with_fine_tuning_skipped(workdir, skipped_run):
    """Without git or DVC the log is this run alone, so the paper has no Experiments
    subsection and a note on the run goes to the Discussion; a skipped fine-tuning is said so;
    the data's layout and stored size are; the author's notes land in their sections;
    rendering twice gives the same bytes."""
    shutil.copytree(skipped_run, workdir, dirs_exist_ok=True)
    (workdir / "report/notes.md").write_text(
        "## Motivation\nCats against foxes.\n\n## this run\nThe only run.\n\n"
        "## Caveats\nTiny data.\n")
    run_stages("report")
    paper = (workdir / "report/paper.md").read_text()
    assert "**Ada Lovelace**" in paper and "\n1843\n" in paper
    assert "Fine-tuning was skipped" in paper and "fine-tuning starts" not in paper
    assert "laid out as train/ + test/: test/ is the test set" in paper
    assert "(centred crop of the shorter side), stored at 16×16 pixels" in paper
    assert "### Experiments" not in paper and "| this run |" not in paper
    tried = paper.split("## What we tried and why\n")[1].split("\n## ")[0]
    assert "This was the only run of its commit" in tried
    assert "- **Backbone: `MobileNetV2`.** Set in `params.yaml` for this run." in tried
    assert "Layers trained" not in tried  # fine-tuning skipped: no choice of layers to argue
    intro = paper.split("## Introduction")[1].split("## What we tried")[0]
    assert "### Motivation\n\nCats against foxes." in intro
    discussion = paper.split("## Discussion")[1]
    assert "### this run\n\nThe only run." in discussion
    assert "### Caveats\n\nTiny data." in paper.split("## Discussion")[1]
    outputs = sorted(p for p in (workdir / "report").rglob("*") if p.is_file()
                     and "templates" not in p.parts and p.name != "notes.md")
    before = {p: p.read_bytes() for p in outputs}
    run_stages("report")
    assert {p: p.read_bytes() for p in outputs} == before


def test_devto_links_figures_under_the_site_url():
    """With `report.site_url`, the dev.to variant's images, its link to the full paper,
    canonical URL and cover are absolute URLs under it; the title line moves into the front
    matter."""
    paper = ("# A title\n\nText, [the full paper](paper.pdf).\n\n"
             "![Curves](figures/learning-curves.png)\n")
    text = devto(paper, "A title", "One sentence.",
                 ReportParams(site_url="https://ada.github.io/paper/", tags="keras, ml"))
    _, matter, body = text.split("---\n", 2)
    assert yaml.safe_load(matter) == {
        "title": "A title", "description": "One sentence.", "tags": "keras, ml",
        "canonical_url": "https://ada.github.io/paper/",
        "cover_image": "https://ada.github.io/paper/figures/hero.png", "published": False}
    assert body == ("\nText, [the full paper](https://ada.github.io/paper/paper.pdf).\n\n"
                    "![Curves](https://ada.github.io/paper/figures/learning-curves.png)\n")


@pytest.mark.parametrize("key, value", [("tags", "a, b, c, d, e"), ("tags", "Machine-Learning"),
                                        ("site_url", "ada.github.io"),
                                        ("cover_image", "/tmp/cover.png")])
def test_bad_publishing_params_are_refused(key, value):
    """dev.to's tag rule and absolute URLs are checked, with the param named."""
    with pytest.raises(ParamError, match=rf"report\.{key}="):
        ReportParams(**{key: value})


def test_typst_escapes_markup_and_keeps_captions():
    """Markup characters in the text come out literally; an image with its "Figure N."
    caption becomes one figure, a "Table N." caption and its table one table figure; headings
    after the literature are unnumbered."""
    paper = ("# T\n\n## Abstract\n\nWe *did* it: a_b*c #d $e @f [h] ~j //k =l\n\n"
             "## Results\n\n![x](figures/a.png)\n\n*Figure 1. The `a` curve.*\n\n"
             "*Table 1. Numbers.*\n\n| a | b |\n|--:|---|\n| 1 | 2 |\n\n"
             "## Literature Cited\n\n### A. Parameters\n")
    found, document = parts(paper)
    assert typst_markup(found["abstract"], document, "figs").strip() == (
        "We #emph[did] it: a\\_b\\*c \\#d \\$e \\@f \\[h\\] \\~j /\\/k =l")
    body = typst_markup(found["body"], document, "figs")
    assert body.startswith("= Results\n#figure(image(\"figs/a.png\", width: 100.0%),")
    assert "caption: [\n    Figure 1. The `a` curve.\n  ]" in body
    assert ", caption: [Table 1. Numbers.]\n  , kind: table" in body
    assert body.rstrip().endswith("#heading(level: 1, numbering: none)[Literature Cited]\n"
                                  "#heading(level: 2, numbering: none)[A. Parameters]")
    assert found["opening"] == []


def test_dataset_name_from_param_classes_or_folder():
    """data.name wins; CIFAR-10's classes are CIFAR-10 from any archive; else the folder."""
    def name(**data: str) -> str:
        """The paper's dataset name for a folder source with `data` params."""
        classes = data.pop("classes", "cat dog".split())
        params = Params.model_construct(data=DataParams.model_construct(source="folder", **data))
        return dataset_name(params, classes)

    assert name(path="../shared/data/cifar10-jpg.tar.gz", classes=list(CLASSES)) == "CIFAR-10"
    assert name(path="/data/food-photos.tar.gz") == "food-photos"
    assert name(path="/data/food-photos.zip", name="Food-101, 10 classes") == \
        "Food-101, 10 classes"
    assert dataset_name(Params(), list(CLASSES)) == "CIFAR-10"


def test_fetch_is_versioned_by_every_data_key_but_the_name():
    """A new data key cannot be forgotten in fetch's params; renaming the dataset reruns only
    the report."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    keys = {f"data.{name}" for name in DataParams.model_fields} - {"data.name"}
    assert keys <= set(stages["fetch"]["params"]) and "data.name" not in stages["fetch"]["params"]
    assert "data" in stages["report"]["params"]


NOTES_WITH_EVERYTHING = """\
# Motivation
Level-one section text.

## Hypotheses
A nested list follows.

1. First ordered item
   - Nested bullet alpha
   - Nested bullet beta
2. Second ordered item

### Third level heading
#### Fourth level heading
##### Fifth level heading
###### Sixth level heading

> Quoted remark here.

Footnoted sentence here.[^why]

[^why]: Footnote body text.

```python
print("fenced code here")
```

| Column head | Other head |
|---|---|
| Cell text one | Cell text two |

A [link text here](https://example.com/page) and a picture:

![Picture in the notes](figures/confusion-matrix.png)
"""
PIECES = ["Level-one section text", "A nested list follows", "First ordered item",
          "Nested bullet alpha", "Nested bullet beta", "Second ordered item",
          "Third level heading", "Fourth level heading", "Fifth level heading",
          "Sixth level heading", "Quoted remark here", "Footnoted sentence here",
          "fenced code here", "Column head", "Cell text one", "link text here"]


def test_every_markdown_construct_of_the_notes_reaches_every_paper(workdir, skipped_run):
    """Headings of every level, nested lists, a block quote, a footnote, fenced code, a table,
    a link and an image in notes.md all appear in paper.md, paper.html and paper.pdf, in order;
    the nested list is nested in the HTML and indented in the PDF."""
    from pypdf import PdfReader

    shutil.copytree(skipped_run, workdir, dirs_exist_ok=True)
    (workdir / "report/notes.md").write_text(NOTES_WITH_EVERYTHING)
    run_stages("report")
    markdown = (workdir / "report/paper.md").read_text()
    html = (workdir / "report/paper.html").read_text()
    reader = PdfReader(workdir / "report/paper.pdf")
    pdf = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    for name, text in (("paper.md", markdown), ("paper.html", html), ("paper.pdf", pdf)):
        positions = [text.find(piece) for piece in PIECES]
        assert -1 not in positions, (name, [p for p, at in zip(PIECES, positions) if at < 0])
        assert positions == sorted(positions), name
    assert "Footnote body text" in html and "Footnote body text" in pdf
    assert re.search(r"<ol[^>]*>\s*<li>\s*(<p>)?First ordered item(</p>)?\s*<ul>\s*<li>\s*"
                     r"(<p>)?Nested bullet alpha", html), "the list is not nested in the HTML"
    for tag in ("<blockquote>", "<table", "<code", 'href="https://example.com/page"',
                'alt="Picture in the notes"', "<h6"):
        assert tag in html, tag
    layout = "\n".join(page.extract_text(extraction_mode="layout") for page in reader.pages)
    indent = {piece: next(len(line) - len(line.lstrip()) for line in layout.splitlines()
                          if piece in line)
              for piece in ("First ordered item", "Nested bullet alpha")}
    assert indent["Nested bullet alpha"] > indent["First ordered item"], indent
    figures = len(re.findall(r"^!\[[^\]]*\]\(figures/", markdown, flags=re.M))
    assert sum(len(page.images) for page in reader.pages) == figures


@pytest.mark.parametrize("train, validation, improving, says, never", [
    (0.97, 0.90, True, "still rising", "over-fitting."),  # a gap, but validation still rose
    (0.97, 0.90, False, "a sign of over-fitting", "still rising"),
    (0.90, 0.92, True, "still rising", "over-fitting."),
    (0.85, 0.92, False, "since dropout acts on the training data only", "a sign of over-"),
    (0.91, 0.90, False, "The two are close", "a sign of over-fitting"),
])
def test_fit_verdict_follows_its_numbers(train, validation, improving, says, never):
    """The Discussion's word on fitting never calls a phase over-fitting while its validation
    accuracy was still rising, nor without training well above validation."""
    sentence = fit_sentence("fine-tuning", train, validation, improving, "dropout")
    assert says in sentence and never not in sentence, sentence
    assert f"training accuracy was {100 * train:.1f}%" in sentence


def test_the_paper_reads_what_the_stages_resolved(workdir, skipped_run):
    """The paper takes the input size and the head's batch from the stages' records
    (`metrics/resolved/`), not from params.yaml or a rule: values no params could give here
    show up in Methods."""
    shutil.copytree(skipped_run, workdir, dirs_exist_ok=True)
    for stage, section, key, value in (("fetch", "model", "input_size", 77),
                                       ("train", "train", "batch_size", 19)):
        path = workdir / f"metrics/resolved/{stage}.json"
        record = json.loads(path.read_text())
        assert record["params"][section][key] != value
        record["params"][section][key] = value
        path.write_text(json.dumps(record))
    run_stages("report")
    methods = (workdir / "report/paper.md").read_text().split("## Materials and Methods")[1]
    assert "resized to 77×77 inside the model" in methods
    assert "batch size 19)" in methods.split("## Results")[0]


def test_paper_names_no_target_the_user_did_not_set(workdir, skipped_run):
    """With report.target_accuracy left null the paper says nothing of a target; set, it says
    whether the fine-tuned model met it."""
    shutil.copytree(skipped_run, workdir, dirs_exist_ok=True)
    run_stages("report")
    prose = (workdir / "report/paper.md").read_text().split("## Literature Cited")[0]
    assert "target" not in prose.lower()  # the appendix's params.yaml names the param
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["report"]["target_accuracy"] = 0.3
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    run_stages("report")
    assert "The target accuracy of 30.0% applies to pretrained weights and is not assessed" \
        in (workdir / "report/paper.md").read_text()


@pytest.mark.parametrize("site_url, image", [
    ("https://ada.github.io/paper/", "https://ada.github.io/paper/figures/hero.png"),
    ("", "figures/hero.png")])
def test_site_head_has_share_cards(tmp_path, site_url, image):
    """The site's head gives a share on LinkedIn, X or Slack its title, description and picture
    (Open Graph and Twitter card tags), the picture absolute under `report.site_url`."""
    report = ReportParams(site_url=site_url)
    html = page("<p>Body.</p>", "A <title>", "One sentence.", ROOT / "report/templates",
                tmp_path, embed=False, canonical=site_url, image=cover(report))
    for tag in ('<meta property="og:title" content="A &lt;title&gt;">',
                '<meta property="og:description" content="One sentence.">',
                f'<meta property="og:image" content="{image}">',
                '<meta name="twitter:card" content="summary_large_image">',
                f'<meta name="twitter:image" content="{image}">'):
        assert tag in html, tag


def mutable_or_callable(value: object, path: str = "paper") -> list[str]:
    """The paths under `value` that hold something a template could run or change: a
    callable, a dict, list or set, a dataclass that is not frozen, a params model that is not."""
    if isinstance(value, str | int | float | bool | type(None) | date):
        return []
    if callable(value) or isinstance(value, dict | list | set | bytearray):
        return [f"{path}: {type(value).__name__}"]
    if dataclasses.is_dataclass(value):
        if not type(value).__dataclass_params__.frozen:
            return [f"{path}: {type(value).__name__} is not frozen"]
        return [found for field in dataclasses.fields(value) for found in
                mutable_or_callable(getattr(value, field.name), f"{path}.{field.name}")]
    if isinstance(value, BaseModel):
        if not value.model_config.get("frozen"):
            return [f"{path}: {type(value).__name__} is not frozen"]
        return [found for name in type(value).model_fields for found in
                mutable_or_callable(getattr(value, name), f"{path}.{name}")]
    if isinstance(value, MappingProxyType):
        return [found for key, item in value.items()
                for found in mutable_or_callable(item, f"{path}[{key!r}]")]
    if isinstance(value, tuple):
        return [found for i, item in enumerate(value)
                for found in mutable_or_callable(item, f"{path}[{i}]")]
    return [f"{path}: {type(value).__name__}"]


def test_the_templates_get_frozen_values_only(workdir, skipped_run):
    """Everything the templates are given (`transfer.report.template_names`) is data: no
    callable, no dict, list or set, nothing that is not frozen, all the way down."""
    shutil.copytree(skipped_run, workdir, dirs_exist_ok=True)
    names = template_names(paper(load_params()))
    assert {"run", "found", "checks", "front", "choices", "tables"} <= set(names)
    assert mutable_or_callable(MappingProxyType(names)) == []
    assert mutable_or_callable({"a": [1]}) == ["paper: dict"]  # the check can fail
