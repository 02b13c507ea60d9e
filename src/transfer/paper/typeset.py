"""The paper as a typeset PDF: its Markdown, converted to Typst, compiled by the `typst` package.

The wording has one source, the Markdown paper. Python-Markdown turns it into HTML, and this
module turns that HTML into Typst markup: headings (numbered up to the literature list),
paragraphs, emphasis, code, links, lists, and each image or table with the caption the
Markdown gives it ("Figure 3. ...") as a Typst figure in place. `report/templates/paper.typ.j2`
(Jinja2) sets the journal look around it: title block, abstract, page and type. The compiler
ships in the `typst` wheel with its own fonts; system fonts are ignored and the creation
date is the paper's, so the same inputs give the same PDF bytes.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jinja2
import markdown
import typst

EXTENSIONS = ["tables", "fenced_code", "sane_lists"]  # as the HTML paper
UNNUMBERED_FROM = "Literature Cited"  # this heading and every one after it have no number
LONG_TABLE = 20  # rows from which a table may break across pages (shorter ones move whole)
CAPTION = re.compile(r"(Figure|Table) \d+\. ")
_SPECIAL = re.compile(r"([\\#$*_@<>\[\]`~/=+\-])")


def escape(text: str) -> str:
    """Text that Typst's markup mode shows as it is."""
    return _SPECIAL.sub(r"\\\1", text)


def string(text: str) -> str:
    """A Typst string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Converter:
    """HTML from Python-Markdown (the paper's subset of it) to Typst markup."""

    def __init__(self, figures: str) -> None:
        """Start numbering headings; images under `figures/` are read from `figures` (relative
        to the compile root)."""
        self.numbered, self.figures = True, figures

    def image(self, src: str) -> str:
        """The Typst path of an image of the paper."""
        return string(re.sub(r"^figures/", f"{self.figures}/", src))

    def inline(self, element: ET.Element) -> str:
        """The Typst markup of an element's text and children, inline."""
        parts = [escape(element.text or "")]
        for child in element:
            parts.append(self.inline_element(child))
            parts.append(escape(child.tail or ""))
        return "".join(parts).replace("\n", " ")

    def inline_element(self, element: ET.Element) -> str:
        """One inline element: emphasis, bold, code, link, line break."""
        tag, inner = element.tag, self.inline(element)
        if tag == "em":
            return f"#emph[{inner}]"
        if tag == "strong":
            return f"#strong[{inner}]"
        if tag == "code":
            return f"#raw({string(element.text or '')})"
        if tag == "a":
            return f"#link({string(element.get('href', ''))})[{inner}]"
        if tag == "br":
            return "\\ "
        if tag == "img":
            return f"#image({self.image(element.get('src', ''))})"
        return inner

    def heading(self, element: ET.Element) -> str:
        """`## Introduction` -> `= Introduction` (the title, `#`, is the template's)."""
        text = "".join(element.itertext()).strip()
        if text == UNNUMBERED_FROM:
            self.numbered = False
        level = int(element.tag[1]) - 1
        numbering = "" if self.numbered else ", numbering: none"
        return f"#heading(level: {level}{numbering})[{self.inline(element)}]"

    def table(self, element: ET.Element, caption: str) -> str:
        """A Markdown table as a Typst table figure with its caption above."""
        rows = [row for row in element.iter("tr")]
        cells = [[self.inline(cell) for cell in row] for row in rows]
        header, body = cells[0], cells[1:]
        align = [{"right": "right", "center": "center"}.get(
            (cell.get("align") or cell.get("style", "").removeprefix("text-align: ")), "left")
            for cell in rows[0]]
        lines = [f"table(columns: {len(header)}, align: ({', '.join(align)},),",
                 "  table.header(" + ", ".join(f"[*{c}*]" for c in header) + "),"]
        lines += ["  " + ", ".join(f"[{c}]" for c in row) + "," for row in body]
        lines.append(")")
        return self.figure("\n".join(lines), caption, "table", breakable=len(body) >= LONG_TABLE)

    @staticmethod
    def figure(body: str, caption: str, kind: str, breakable: bool = False) -> str:
        """A figure in place, its caption (which carries its own number) unnumbered by Typst;
        unless `breakable`, kept on one page with its caption."""
        figure = (f"figure(\n{body},\n  caption: [{caption}], kind: {kind}, "
                  f"supplement: none, numbering: none)")
        return f"#[\n#show figure: set block(breakable: true)\n#{figure}\n]" if breakable \
            else f"#{figure}"

    def blocks(self, elements: list[ET.Element]) -> list[str]:
        """The Typst blocks of a run of block elements; a caption paragraph joins the image
        before it or the table after it."""
        out, i = [], 0
        while i < len(elements):
            element = elements[i]
            following = elements[i + 1] if i + 1 < len(elements) else None
            caption = caption_of(following)
            if is_image_paragraph(element) and caption and caption.startswith("Figure"):
                image = element.find("img")
                out.append(self.figure(f"  image({self.image(image.get('src'))}, width: 100%)",
                                       self.inline(following.find("em")), "image"))
                i += 2
                continue
            if (caption := caption_of(element)) and caption.startswith("Table") and \
                    following is not None and following.tag == "table":
                out.append(self.table(following, self.inline(element.find("em"))))
                i += 2
                continue
            out.append(self.block(element))
            i += 1
        return out

    def block(self, element: ET.Element) -> str:
        """One block element."""
        tag = element.tag
        if re.fullmatch(r"h[1-6]", tag):
            return self.heading(element)
        if tag == "p":
            return self.inline(element)
        if tag in ("ul", "ol"):
            marker = "-" if tag == "ul" else "+"
            return "\n".join(f"{marker} {self.inline(item)}" for item in element.iter("li"))
        if tag == "pre":
            code = element.find("code")
            text = "".join((code if code is not None else element).itertext())
            language = (code.get("class", "") if code is not None else "").removeprefix(
                "language-")
            lang = f", lang: {string(language)}" if language else ""
            return f"#raw(block: true{lang}, {string(text.rstrip(chr(10)))})"
        if tag == "table":
            return self.table(element, "")
        if tag == "hr":
            return "#line(length: 100%)"
        return self.inline(element)


def caption_of(element: ET.Element | None) -> str | None:
    """The text of a paragraph that is only an emphasised "Figure N. ..." or "Table N. ..."."""
    if element is None or element.tag != "p" or len(element) != 1 or (element.text or "").strip():
        return None
    em = element[0]
    text = "".join(em.itertext())
    return text if em.tag == "em" and CAPTION.match(text) and not (em.tail or "").strip() \
        else None


def is_image_paragraph(element: ET.Element) -> bool:
    """Whether a paragraph holds one image and nothing else."""
    return (element.tag == "p" and len(element) == 1 and element[0].tag == "img"
            and not (element.text or "").strip() and not (element[0].tail or "").strip())


def sections(paper: str) -> dict[str, list[ET.Element]]:
    """The Markdown paper's HTML blocks: "front" (before the abstract, less the title, author
    and date lines), "abstract" and "body" (from the first heading after the abstract)."""
    html = markdown.markdown(paper, extensions=EXTENSIONS, output_format="xhtml")
    root = ET.fromstring(f"<div>{html}</div>")
    parts: dict[str, list[ET.Element]] = {"front": [], "abstract": [], "body": []}
    part = "front"
    for element in root:
        if element.tag == "h2":
            part = "abstract" if "".join(element.itertext()) == "Abstract" else "body"
            if part == "abstract":
                continue
        if part == "front" and not is_image_paragraph(element) and not caption_of(element):
            continue  # the title, author and date: the template sets them
        parts[part].append(element)
    return parts


def typst_source(paper: str, values: dict, templates: Path, figures: str) -> str:
    """The Typst source of the paper: `paper.typ.j2` filled with the converted Markdown, its
    images read from the folder `figures` of the compile root."""
    parts, converter = sections(paper), Converter(figures)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates), trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["typst_string"] = string
    return env.get_template("paper.typ.j2").render(
        **values, **{name: "\n\n".join(converter.blocks(blocks))
                     for name, blocks in parts.items()})


def pdf(source: str, root: Path, day: dt.date | None) -> bytes:
    """Compile Typst `source` (paths relative to `root`) to PDF bytes created on `day`
    (undated: the epoch), with the compiler's own fonts only."""
    moment = dt.datetime.combine(day or dt.date(1970, 1, 1), dt.time(), dt.timezone.utc)
    return typst.compile(source.encode(), root=str(root), ignore_system_fonts=True,
                         timestamp=int(moment.timestamp()))
