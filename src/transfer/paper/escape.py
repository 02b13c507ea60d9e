"""Text that comes from the data (class and file names, the dataset's folder, an archive's
members), escaped for each format the paper writes it into.

Names from the data are untrusted: a class folder may be called `<img src=x onerror=...>`, `*`,
`a|b` or `#set`. The paper's Markdown is the one source of its HTML (pandoc, raw HTML passed
through) and of its Typst (pandoc), so a name escaped for Markdown is text in both; the HTML
head, the Typst title block and the dev.to front matter get their own escaping; figures show
names with Matplotlib's math text off (`transfer.paper.charts`).

`Markdown` marks text that already is Markdown (the templates' own, a table, a citation, the
author's notes.md): the paper's template environment writes it as it is and escapes every
other string (`finalize`), so a template cannot forget to escape a value. `Typst` does the same
for the Typst template (`typst_finalize`), and the HTML page's environment escapes by default.
"""

from __future__ import annotations

import re

import markupsafe

# The ASCII punctuation that CommonMark or one of pandoc's extensions gives a meaning to inside
# a line (emphasis, code, links, raw HTML, math, spans, attributes, sub- and superscript,
# strikeout, table cells): always escaped, but `_` between two letters or digits (it cannot
# emphasise there: `learning_rate`). `&` starts an entity and `:` an emoji only before a name
# and `;` or `:`; `# > - + = :`, `1.` and `(a)` mean something only where a line starts. The
# rest stays as typed, so the Markdown stays readable.
ACTIVE = re.compile(r"([\\`*\[\]{}<|$~^]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])|&(?=#?\w+;)"
                    r"|:(?=[\w+-]+:))")
LINE_START = re.compile(r"^([#>\-+=:]|\(?[A-Za-z0-9]{1,9}[.)](?=\s|$))")
CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
TYPST_ACTIVE = re.compile(r"([!-/:-@\[-`{-~])")  # all ASCII punctuation


class Markdown(str):
    """Text that is already Markdown: the paper writes it as it is."""


def markdown(text: object, line_start: bool = True) -> Markdown:
    """`text` as Markdown that shows exactly its characters, wherever it lands in a line (a
    sentence, a caption, alt text, a heading; a table cell, where no line starts, with
    `line_start` False): active characters backslash-escaped, control characters and line
    breaks made spaces."""
    escaped = ACTIVE.sub(r"\\\1", CONTROL.sub(" ", str(text)))
    if not line_start:
        return Markdown(escaped)
    return Markdown(LINE_START.sub(lambda m: m.group(1)[:-1] + "\\" + m.group(1)[-1]
                                   if m.group(1)[-1] in ".)" else "\\" + m.group(1), escaped))


def finalize(value: object) -> object:
    """The Markdown templates' `finalize`: a string that is not `Markdown` is escaped."""
    if isinstance(value, Markdown) or not isinstance(value, str):
        return value
    return markdown(value)


def html(text: object) -> markupsafe.Markup:
    """`text` for HTML text or an attribute value."""
    return markupsafe.escape(str(text))


class Typst(str):
    """Text that is already Typst source: the Typst template writes it as it is."""


def typst_string(text: object) -> Typst:
    """`text` as a Typst string literal (its code mode: `#text("...")`)."""
    return Typst('"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"')


def typst_markup(text: object) -> Typst:
    """`text` as Typst markup that shows exactly its characters: every ASCII punctuation
    character backslash-escaped, control characters and line breaks made spaces."""
    return Typst(TYPST_ACTIVE.sub(r"\\\1", CONTROL.sub(" ", str(text))))


def typst_finalize(value: object) -> object:
    """The Typst template's `finalize`: a string that is not `Typst` is escaped as markup."""
    if isinstance(value, Typst) or not isinstance(value, str):
        return value
    return typst_markup(value)
