"""The README is a front page whose links all resolve, and its test command is the one CI runs."""

from __future__ import annotations

import re

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
