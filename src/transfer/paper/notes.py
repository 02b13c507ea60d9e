"""The author's own words, `report/notes.md`: its sections, placed into the paper by title.

A `# Title` or `## Title` heading (or a title underlined with `===` or `---`) starts a
section; the deeper headings inside one are moved a level down, under the section's own
heading in the paper. HTML comments are
left out, and so are sections that hold nothing else. Any other text before the first section
has no place in the paper: it stops the report with one line naming it, as nothing the
author wrote is dropped in silence. Fenced code is taken as it is.
"""

from __future__ import annotations

import re
from pathlib import Path

from transfer.paper.escape import Markdown
from transfer.runtime.errors import UserError

ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*$")
FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
NOT_A_TITLE = re.compile(r" {0,3}([-+*>|]|\d+[.)])( |$)")  # list items, quotes, table rows


def without_comments(text: str) -> str:
    """`text` with HTML comments blanked, line breaks kept (so line numbers stay true)."""
    return re.sub(r"<!--.*?-->", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)


def read_notes(path: Path) -> dict[Markdown, Markdown]:
    """The sections of notes file `path` with text in them, by title ({} without the file): the
    author's Markdown, written into the paper as it is."""
    if not path.is_file():
        return {}
    lines = without_comments(path.read_text()).splitlines()
    sections: dict[str, list[str]] = {}
    title, fence = None, None
    for number, line in enumerate(lines, 1):
        if fence:
            fence = None if line.strip().startswith(fence) else fence
        elif match := FENCE.match(line):
            fence = match.group(1)
        elif (match := ATX.match(line)) and len(match.group(1)) <= 2:
            title = (match.group(2) or "").strip()
            sections[title] = []
            continue
        elif match:
            line = f"{'#' * min(6, len(match.group(1)) + 1)} {match.group(2) or ''}"
        elif SETEXT.match(line) and number > 1 and lines[number - 2].strip() \
                and not NOT_A_TITLE.match(lines[number - 2]):
            title = (sections[title].pop() if title is not None else lines[number - 2]).strip()
            sections[title] = []
            continue
        if title is None:
            if line.strip():
                raise UserError(f"{path}:{number}: text before the first '## Section' heading "
                                f"has no place in the paper ({line.strip()[:40]!r}); put it "
                                "under a heading")
            continue
        sections[title].append(line)
    return {Markdown(t): Markdown("\n".join(body).strip()) for t, body in sections.items()
            if "\n".join(body).strip()}
