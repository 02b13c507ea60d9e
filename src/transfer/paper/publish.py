"""The paper's web formats, all from its Markdown: one-file HTML, a static site, dev.to.

- `page(..., embed=True)`: `report/paper.html`, one file with the stylesheet and every figure
  inside as a `data:` URI, to read or mail as it is.
- `write_site`: `report/site/`, an `index.html` whose figures are PNG files beside it, for any
  static host (GitHub Pages) and for importers that fetch a page and its images by URL
  (Medium's "Import a story"); nothing in it points outside the folder.
- `devto`: the Markdown with dev.to's front matter (title, description, tags, canonical URL,
  cover image, `published: false`), its body plain Markdown for Hashnode's editor too. Images
  link to `report.site_url` when it is set, since these editors cannot read local files.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pypandoc
import yaml
from markupsafe import Markup

from transfer.paper import wording
from transfer.paper.typeset import READER
from transfer.params.report import ReportParams

FIGURE_LINK = re.compile(r"(!\[[^\]]*\]\()figures/")


def html_body(paper: str) -> str:
    """The Markdown paper as HTML, the body of every page (pandoc, as the PDF reads it)."""
    return pypandoc.convert_text(paper, "html5", format=READER,
                                 extra_args=["--wrap=none", "--syntax-highlighting=none"])


def page(body: str, title: str, description: str, templates: Path, figures: Path,
         embed: bool, canonical: str = "") -> str:
    """The paper's HTML `body` as a page: figures embedded, or linked as `figures/*.png`."""
    if embed:
        def inline(match: re.Match) -> str:
            data = base64.b64encode((figures / match.group(1)).read_bytes()).decode()
            return f'src="data:image/png;base64,{data}"'

        body = re.sub(r'src="figures/([^"]+)"', inline, body)
    env = wording.environment(templates, autoescape=True)
    return env.get_template("paper.html.j2").render(
        title=title, description=description, canonical=canonical, body=Markup(body),
        css=Markup((templates / "style.css").read_text()))


def write_site(html: str, figures: Path, site: Path) -> None:
    """`index.html` and a copy of every figure it shows into the new folder `site`."""
    (site / "figures").mkdir(parents=True)
    for name in sorted(set(re.findall(r'src="figures/([^"]+)"', html))):
        shutil.copyfile(figures / name, site / "figures" / name)
    (site / "index.html").write_text(html)


def absolute(markdown_text: str, site_url: str) -> str:
    """Figure links made absolute under `site_url` (left as they are without one)."""
    if not site_url:
        return markdown_text
    return FIGURE_LINK.sub(rf"\g<1>{site_url.rstrip('/')}/figures/", markdown_text)


def devto(paper: str, title: str, description: str, report: ReportParams) -> str:
    """The paper for dev.to and Hashnode: front matter, then the Markdown without its title."""
    site = report.site_url.rstrip("/")
    cover = report.cover_image or (f"{site}/figures/examples.png" if site else "")
    front = {"title": title, "description": description,
             "tags": ", ".join(t.strip() for t in report.tags.split(",") if t.strip()),
             "canonical_url": f"{site}/" if site else "", "cover_image": cover,
             "published": False}
    body = re.sub(r"\A# .*\n+", "", paper)
    matter = yaml.safe_dump({k: v for k, v in front.items() if v != ""}, sort_keys=False,
                            allow_unicode=True, width=1000)
    return f"---\n{matter}---\n\n{absolute(body, site)}"
