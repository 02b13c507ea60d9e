"""The paper as a typeset PDF: its Markdown, converted to Typst by pandoc, compiled by `typst`.

The wording has one source, the Markdown paper. pandoc (the `pypandoc-binary` wheel) reads it
as CommonMark with its extensions (READER: pipe tables, footnotes, ...), the reader the HTML
paper uses too, and writes Typst. Before writing, the paper's own conventions are applied to
pandoc's syntax tree: an image followed by an emphasised "Figure N. ..." paragraph, and an
emphasised "Table N. ..." paragraph followed by a table, become figures with those captions;
headings from "Literature Cited" on are unnumbered; images are read from the compile root's
figures folder. `report/templates/paper.typ.j2` (Jinja2) sets the journal look around it:
title block, abstract, page and type. The compiler ships in the `typst` wheel with its own
fonts; system fonts are ignored and the creation date is the paper's, so the same inputs give
the same PDF bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pypandoc
import typst

from transfer.paper import wording
from transfer.paper.escape import Typst, typst_finalize, typst_string

READER = "commonmark_x-gfm_auto_identifiers-smart"  # CommonMark + extensions, text as typed
UNNUMBERED_FROM = "Literature Cited"  # this heading and every one after it have no number
CAPTION = re.compile(r"(Figure|Table) \d+\. ")
CELL_START = re.compile(r"[-+=/]|\d+\.")  # Typst's list, enum, heading and term markers
Block = dict  # a node of pandoc's JSON syntax tree


def plain(node: object) -> str:
    """The text of a pandoc node (inline or block, or a list of them)."""
    if isinstance(node, list):
        return "".join(plain(n) for n in node)
    if not isinstance(node, dict):
        return ""
    kind = node["t"]
    if kind == "Str":
        return node["c"]
    if kind in ("Space", "SoftBreak", "LineBreak"):
        return " "
    if kind in ("Code", "Math"):
        return node["c"][-1]
    return plain(node.get("c", []))


def caption(block: Block | None, kind: str) -> list | None:
    """The inlines of a paragraph that is only an emphasised "`kind` N. ..."."""
    if block is None or block["t"] != "Para" or len(block["c"]) != 1:
        return None
    emph = block["c"][0]
    return emph["c"] if emph["t"] == "Emph" and plain(emph).startswith(kind) and \
        CAPTION.match(plain(emph)) else None


def lone_image(block: Block) -> Block | None:
    """The image of a paragraph that holds one image and nothing else."""
    return block["c"][0] if block["t"] == "Para" and len(block["c"]) == 1 and \
        block["c"][0]["t"] == "Image" else None


def relocate(node: object, figures: str) -> None:
    """Point every image under `node` at the `figures` folder; images fill the line width."""
    if isinstance(node, list):
        for n in node:
            relocate(n, figures)
    elif isinstance(node, dict):
        if node.get("t") == "Image":
            attributes, target = node["c"][0], node["c"][2]
            target[0] = re.sub(r"^figures/", f"{figures}/", target[0])
            attributes[2] = [kv for kv in attributes[2] if kv[0] != "width"] + [["width", "100%"]]
        relocate(node.get("c"), figures)


def escape_cell_starts(node: object, in_table: bool = False) -> None:
    """Escape a Typst marker (`- `, `+ `, `= `, `/ `, `1.`) that starts a table cell: pandoc's
    Typst writer escapes one at the start of a paragraph, not of a cell, where a class named
    "- x" would become a list."""
    if isinstance(node, list):
        for n in node:
            escape_cell_starts(n, in_table)
    elif isinstance(node, dict):
        in_table = in_table or node.get("t") == "Table"
        first = node["c"][0] if in_table and node.get("t") == "Plain" and node["c"] else None
        if first and first["t"] == "Str" and CELL_START.match(first["c"]):
            node["c"].insert(0, {"t": "RawInline", "c": ["typst", "\\"]})
        escape_cell_starts(node.get("c"), in_table)


def with_captions(blocks: list[Block]) -> list[Block]:
    """`blocks` with each image + "Figure N." paragraph, and each "Table N." paragraph + table,
    joined into one captioned figure or table."""
    out, i = [], 0
    while i < len(blocks):
        block, following = blocks[i], blocks[i + 1] if i + 1 < len(blocks) else None
        if (image := lone_image(block)) and (text := caption(following, "Figure")):
            out.append({"t": "Figure", "c": [["", [], []], [None, [{"t": "Plain", "c": text}]],
                                             [{"t": "Plain", "c": [image]}]]})
            i += 2
        elif (text := caption(block, "Table")) and following and following["t"] == "Table":
            following["c"][1] = [None, [{"t": "Plain", "c": text}]]
            out.append(following)
            i += 2
        else:
            out.append(block)
            i += 1
    return out


def parts(paper: str) -> tuple[dict[str, list[Block]], dict]:
    """The Markdown paper's blocks: "opening" (before the abstract: its figures only; the title,
    author and date are the template's), "abstract" and "body"; and the parsed document."""
    document = json.loads(pypandoc.convert_text(paper, "json", format=READER))
    found: dict[str, list[Block]] = {"opening": [], "abstract": [], "body": []}
    part, numbered = "opening", True
    for block in with_captions(document["blocks"]):
        if block["t"] == "Header" and block["c"][0] == 2 and part != "body":
            part = "abstract" if plain(block["c"][2]) == "Abstract" else "body"
            if part == "abstract":
                continue
        if block["t"] == "Header":
            numbered = numbered and plain(block["c"][2]) != UNNUMBERED_FROM
            if not numbered:
                block["c"][1][1].append("unnumbered")
        if part == "opening" and block["t"] != "Figure":
            continue
        found[part].append(block)
    return found, document


def typst_markup(blocks: list[Block], document: dict, figures: str) -> str:
    """pandoc's Typst for `blocks` of `document`, `## ` headings at Typst's level 1."""
    relocate(blocks, figures)
    escape_cell_starts(blocks)
    source = json.dumps({**document, "blocks": blocks})
    return pypandoc.convert_text(source, "typst", format="json",
                                 extra_args=["--shift-heading-level-by=-1", "--wrap=none"])


def typst_source(paper: str, values: dict, templates: Path, figures: str) -> str:
    """The Typst source of the paper: `paper.typ.j2` filled with the converted Markdown, its
    images read from the folder `figures` of the compile root; any other string the template
    writes is escaped as Typst markup unless it is `Typst` (`transfer.paper.escape`)."""
    found, document = parts(paper)
    env = wording.environment(templates)
    env.finalize = typst_finalize
    env.filters["typst_string"] = typst_string
    return env.get_template("paper.typ.j2").render(
        **values, **{name: Typst(typst_markup(blocks, document, figures))
                     for name, blocks in found.items()})


def pdf(source: str, root: Path, day: dt.date | None) -> bytes:
    """Compile Typst `source` (paths relative to `root`) to PDF bytes created on `day`
    (undated: the epoch), with the compiler's own fonts only."""
    moment = dt.datetime.combine(day or dt.date(1970, 1, 1), dt.time(), dt.timezone.utc)
    return typst.compile(source.encode(), root=str(root), ignore_system_fonts=True,
                         timestamp=int(moment.timestamp()))
