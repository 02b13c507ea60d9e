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
PDF_NAME = "paper.pdf"  # the full paper beside the article's page
PDF_LINK = re.compile(r"(\]\()paper\.pdf\)")


def html_body(paper: str) -> str:
    """The Markdown paper as HTML, the body of every page (pandoc, as the PDF reads it)."""
    return pypandoc.convert_text(paper, "html5", format=READER,
                                 extra_args=["--wrap=none", "--syntax-highlighting=none"])


def cover(report: ReportParams) -> str:
    """The picture a share of the paper shows: `report.cover_image`, else the one at the top,
    under `report.site_url` when it is set (relative to the page otherwise)."""
    site = report.site_url.rstrip("/")
    return report.cover_image or f"{site + '/' if site else ''}figures/hero.png"


def page(body: str, title: str, description: str, templates: Path, figures: Path,
         embed: bool, canonical: str = "", image: str = "") -> str:
    """The paper's HTML `body` as a page: figures embedded, or linked as `figures/*.png`; its
    head with the Open Graph and Twitter card tags of a share (`image`: the picture's URL)."""
    if embed:
        def inline(match: re.Match) -> str:
            data = base64.b64encode((figures / match.group(1)).read_bytes()).decode()
            return f'src="data:image/png;base64,{data}"'

        body = re.sub(r'src="figures/([^"]+)"', inline, body)
    env = wording.environment(templates, autoescape=True)
    return env.get_template("paper.html.j2").render(
        title=title, description=description, canonical=canonical, image=image,
        body=Markup(body),
        css=Markup((templates / "style.css").read_text()))


def write_site(html: str, figures: Path, site: Path, pdf: bytes) -> None:
    """`index.html`, a copy of every figure it shows and the full paper (`paper.pdf`, which
    the article links to) into the new folder `site`."""
    (site / "figures").mkdir(parents=True)
    (site / PDF_NAME).write_bytes(pdf)
    for name in sorted(set(re.findall(r'src="figures/([^"]+)"', html))):
        shutil.copyfile(figures / name, site / "figures" / name)
    (site / "index.html").write_text(html)


def absolute(markdown_text: str, site_url: str) -> str:
    """Figure links made absolute under `site_url` (left as they are without one)."""
    if not site_url:
        return markdown_text
    site = site_url.rstrip("/")
    return PDF_LINK.sub(rf"\g<1>{site}/{PDF_NAME})",
                        FIGURE_LINK.sub(rf"\g<1>{site}/figures/", markdown_text))


def devto(paper: str, title: str, description: str, report: ReportParams) -> str:
    """The paper for dev.to and Hashnode: front matter, then the Markdown without its title."""
    site = report.site_url.rstrip("/")
    front = {"title": title, "description": description,
             "tags": ", ".join(t.strip() for t in report.tags.split(",") if t.strip()),
             "canonical_url": f"{site}/" if site else "",
             "cover_image": cover(report) if site or report.cover_image else "",
             "published": False}
    body = re.sub(r"\A# .*\n+", "", paper)
    matter = yaml.safe_dump({k: v for k, v in front.items() if v != ""}, sort_keys=False,
                            allow_unicode=True, width=1000)
    return f"---\n{matter}---\n\n{absolute(body, site)}"


def prose(text: str) -> str:
    """A Markdown text's prose, what a reader reads through: no front matter, tables, code,
    captions, images, headings or references."""
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    text = re.sub(r"^```.*?^```$", "", text, flags=re.S | re.M)
    kept = [line for line in text.splitlines()
            if not re.match(r"\s*(\||!\[|\*(Figure|Table) \d+\.|#)", line)]
    return "\n".join(kept).split("## Literature Cited")[0]
