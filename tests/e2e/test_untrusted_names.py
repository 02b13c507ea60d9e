"""Names from the data are text in every format the paper is written in: a dataset whose folder
and class names are markup (HTML with an event handler, Markdown emphasis and a table pipe,
Typst's `#`, `$`, `@`, `*` and `_`, a backtick, quotes) runs from fetch to report, and each
output shows the names as they are and no markup from them."""

from __future__ import annotations

import contextlib
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pypandoc
import pytest
import yaml
from conftest import ROOT, make_image_folder, run_stages, tiny_params, write_params
from pypdf import PdfReader

from transfer.paper.typeset import READER

pytestmark = pytest.mark.slow

DATASET = "<svg onload=alert(1)> set"
CLASSES = ["<img src=x onerror=alert(1)>", "*em* _u_ a|b", "#set $x$ @ref", "`tick` \"q\" 's'"]
PAGES = ("report/paper.html", "report/site/index.html")


class Page(HTMLParser):
    """An HTML page's elements, attributes and text, as a browser's parser sees them."""

    def __init__(self, html: str) -> None:
        """Parse `html`."""
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        """Record an element and its attributes."""
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        """Record text."""
        self.text.append(data)


def words(text: str) -> str:
    """`text` with every run of whitespace one space (PDF text breaks lines anywhere)."""
    return " ".join(text.split())


@pytest.fixture(scope="module")
def marked_up_run(tmp_path_factory) -> Path:
    """A project run from fetch to report on a dataset whose names are markup."""
    root = tmp_path_factory.mktemp("names")
    data = make_image_folder(root / "data" / DATASET, CLASSES, 8, 3)
    work = root / "work"
    work.mkdir()
    shutil.copytree(ROOT / "report/templates", work / "report/templates")
    with contextlib.chdir(work):
        write_params(work, **tiny_params(data))
        run_stages("fetch", "features", "audit", "train", "finetune", "evaluate", "report")
    return work


def test_names_are_classes_as_written(marked_up_run):
    """fetch keeps the names exactly (sorted)."""
    assert json.loads((marked_up_run / "data/prepared/classes.json").read_text()) == \
        sorted(CLASSES)


@pytest.mark.parametrize("page", PAGES)
def test_html_has_no_markup_from_names(marked_up_run, page):
    """Parsed (not grepped): no element or attribute from a name, no event handler anywhere;
    every name is text of the page, the dataset's name in its title and description."""
    html = Page((marked_up_run / page).read_text())
    tags = {tag for tag, _ in html.tags}
    assert "svg" not in tags and not [a for _, attrs in html.tags for a in attrs
                                      if a.startswith("on")]
    assert all(attrs.get("src", "").startswith(("data:image/png", "figures/"))
               for tag, attrs in html.tags if tag == "img")
    text = words("".join(html.text))
    for name in [DATASET, *CLASSES]:
        assert name in text, name
    meta = {attrs.get("name") or attrs.get("property"): attrs.get("content", "")
            for tag, attrs in html.tags if tag == "meta"}
    assert DATASET in meta["description"] and DATASET in meta["og:title"]


def test_pdf_shows_the_names(marked_up_run):
    """The PDF's text holds every name as it is, the title's dataset too."""
    reader = PdfReader(marked_up_run / "report/paper.pdf")
    text = words(" ".join(page.extract_text() for page in reader.pages))
    for name in [DATASET, *CLASSES]:
        assert words(name) in text, name
    assert DATASET in reader.metadata.title


def table_cells(markdown: str) -> list[tuple[int, list[list[str]]]]:
    """Each pipe table of `markdown` as pandoc reads it: its column count and the text of
    every row's cells."""
    def text(node: object) -> str:
        if isinstance(node, list):
            return "".join(map(text, node))
        if not isinstance(node, dict):
            return ""
        if node["t"] in ("Str", "Code"):
            return node["c"] if node["t"] == "Str" else node["c"][1]
        return " " if node["t"] == "Space" else text(node.get("c", []))

    tables = []
    for block in json.loads(pypandoc.convert_text(markdown, "json", format=READER))["blocks"]:
        if block["t"] == "Table":
            _, _, columns, head, bodies, _ = block["c"]
            rows = head[1] + [row for body in bodies for row in body[3]]
            tables.append((len(columns), [[text(cell[4]) for cell in row[1]] for row in rows]))
    return tables


def test_markdown_tables_keep_their_cells(marked_up_run):
    """Every table of paper.md has as many cells in each row as columns, and the confusions
    table names the classes as they are."""
    tables = table_cells((marked_up_run / "report/paper.md").read_text())
    assert tables and all(len(row) == columns for columns, rows in tables for row in rows)
    cells = {cell for _, rows in tables for row in rows for cell in row}
    assert set(CLASSES) & cells, cells


def test_prose_and_captions_show_the_names(marked_up_run):
    """The paper's prose, alt text and captions, read back by pandoc, hold the names as text:
    no emphasis, code, math or raw HTML came from them."""
    document = json.loads(pypandoc.convert_text(
        (marked_up_run / "report/paper.md").read_text(), "json", format=READER))
    kinds, links = set(), []

    def walk(node: object) -> None:
        if isinstance(node, list):
            for n in node:
                walk(n)
        elif isinstance(node, dict):
            kinds.add(node["t"])
            if node["t"] == "Link":
                links.append(node["c"][2][0])
            walk(node.get("c"))
    walk(document["blocks"])
    assert not kinds & {"RawInline", "RawBlock", "Math", "Strikeout", "Superscript",
                        "Subscript", "Span"}
    assert links and all(url.startswith("https://") for url in links)  # the literature's
    html = words("".join(Page(pypandoc.convert_text(
        (marked_up_run / "report/paper.md").read_text(), "html5", format=READER)).text))
    assert f"has {len(CLASSES)} classes: {', '.join(sorted(CLASSES))}." in html


def test_front_matter_is_yaml(marked_up_run):
    """dev.to's front matter parses as YAML and gives the title with the dataset's name."""
    _, matter, _ = (marked_up_run / "report/devto.md").read_text().split("---\n", 2)
    front = yaml.safe_load(matter)
    assert DATASET in front["title"] and DATASET in front["description"]
    assert front["published"] is False
