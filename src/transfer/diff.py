"""What changed between two runs, in one page: params, headline numbers, images, sentences.

    python -m transfer.diff A B [--examples N]

A and B are experiment names (`dvc exp show`), git revisions, or `workspace`. Writes
`report/diff/diff.md` and a standalone `report/diff/diff.html` beside the paper: the params
that differ, each headline number of `metrics/summary.json` with its change, McNemar's exact
test on the test images both runs scored (when they share a test set), a picture of test images
B gets right and A wrong (fixed) and of the reverse (broken), per-class accuracy, and the
sentences of the paper that changed. Every value is read from the runs' own files (git for
params and records, DVC's cache for predictions, images and papers); nothing is recomputed.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from transfer.paper import charts, escape, publish
from transfer.paper.escape import Markdown
from transfer.paper.experiments import flatten, format_value, read_at, same_test_set
from transfer.paper.stats import discordant, mcnemar_p
from transfer.paper.wording import (
    Table,
    code,
    markdown_table,
    p_value,
    percent,
    plural,
    points,
)
from transfer.runtime.errors import UserError
from transfer.runtime.files import atomic_path
from transfer.runtime.paths import (
    CLASSES,
    EVALUATION,
    PAPER,
    PARAMS,
    PREDICTIONS,
    PREPARED,
    REPORT,
    RESOLVED,
    SUMMARY,
    TEMPLATES,
)
from transfer.runtime.stage import run_stage

OUT = REPORT / "diff"
HEADLINE = {"test_acc": "test accuracy, fine-tuned", "test_acc_head": "test accuracy, head",
            "val_acc": "best val. accuracy, fine-tuned", "val_acc_head": "best val. accuracy, head",
            "minutes": charts.WALL_TIME}
RESOLVING = ("fetch", "train", "finetune")  # the stages that write metrics/resolved/<stage>.json
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(*])")


@dataclass(frozen=True)
class Run:
    """One side of the diff: what the user called it and the git revision that holds it."""

    name: str
    rev: str  # "workspace", or a commit (an experiment's, or any other)

    def read(self, path: Path | str, mode: str = "r") -> str | bytes:
        """One of the run's files; UserError naming the run and the file if it has none."""
        from dvc.exceptions import DvcException

        try:
            return read_at(path, self.rev, mode)
        except (OSError, DvcException) as e:
            raise UserError(f"{self.name} has no {path} ({type(e).__name__}): did its run get "
                            f"that far?") from e

    def json(self, path: Path) -> dict:
        """A JSON record of the run."""
        return json.loads(self.read(path))


def resolve(name: str) -> Run:
    """`name` as a run: `workspace`, an experiment of this repository, or a git revision."""
    if name == "workspace":
        return Run(name, name)
    import dvc.api
    from dvc.exceptions import DvcException
    from scmrepo.exceptions import SCMError
    from scmrepo.git import Git

    try:
        experiments = {row["Experiment"]: row["rev"] for row in dvc.api.exp_show()
                       if row.get("Experiment")}
        if name in experiments:
            return Run(name, experiments[name])
        return Run(name, Git(".").resolve_rev(name))
    except (DvcException, SCMError):
        raise UserError(f"'{name}' is neither `workspace`, an experiment of this commit "
                        f"(`dvc exp show`) nor a git revision") from None


def ran_with(run: Run) -> dict:
    """The values the run's stages resolved its params to (`metrics/resolved/`), flat; none
    for a stage whose record the run lacks (it stopped before, or predates the records)."""
    values = {}
    for stage in RESOLVING:
        try:
            values.update(flatten(run.json(RESOLVED / f"{stage}.json")["params"]))
        except UserError:
            continue
    return values


def params_table(a: Run, b: Run) -> tuple[Table, dict, dict]:
    """The params that differ between the runs (all but `report.*`), as written and, where a
    stage resolved one to another value, `written → resolved`; and both runs' params."""
    pa, pb = (flatten(yaml.safe_load(run.read(PARAMS))) for run in (a, b))
    ra, rb = ran_with(a), ran_with(b)

    def shown(written: dict, ran: dict, key: str) -> str:
        """The param `key` as written, and what it became if that differs."""
        value, became = format_value(written.get(key)), format_value(ran.get(key, written.get(key)))
        return value if value == became else f"{value} → {became}"

    keys = [k for k in dict.fromkeys([*pa, *pb]) if not k.startswith("report.")
            and shown(pa, ra, k) != shown(pb, rb, k)]
    rows = [[code(k), code(shown(pa, ra, k)), code(shown(pb, rb, k))] for k in keys]
    return Table(Markdown("Params that differ (`params.yaml`; `auto → value`: what the run's "
                          "stage resolved it to)."), ["param", a.name, b.name], rows, ""), pa, pb


def headline_table(a: Run, b: Run) -> Table:
    """Each headline number of both runs and its change (points for accuracies)."""
    sa, sb = a.json(SUMMARY), b.json(SUMMARY)
    rows = []
    for key, label in HEADLINE.items():
        x, y = sa.get(key), sb.get(key)
        if key == "minutes":
            cells = ["—" if v is None else f"{v:.1f}" for v in (x, y)]
            change = "—" if None in (x, y) or not x else f"{y / x:.2f}x"
        else:
            cells = [percent(x, 2), percent(y, 2)]
            change = "—" if None in (x, y) else f"{points(y - x)} points"
        rows.append([label, *cells, change])
    return Table(Markdown("Headline numbers (`metrics/summary.json`)."),
                 ["", a.name, b.name, "change"], rows, "")


def predictions(run: Run) -> list[dict]:
    """The run's fine-tuned predictions, one row per test image."""
    return list(csv.DictReader(io.StringIO(run.read(PREDICTIONS))))


def test_images(run: Run, indices: list[int]) -> np.ndarray:
    """The run's prepared test images at `indices` (uint8)."""
    images = np.load(io.BytesIO(run.read(PREPARED / "test_x.npy", mode="rb")))
    return images[indices]


def draw_changed(run: Run, rows_a: list[dict], rows_b: list[dict], indices: list[int],
                 fixed: bool, path: Path) -> None:
    """A grid of the test images at `indices`, each titled with its true class, then the
    first run's answer → the second's."""
    titles = [f"{rows_a[i]['actual']}\n{rows_a[i]['predicted']} → {rows_b[i]['predicted']}"
              for i in indices]
    charts.image_grid(test_images(run, indices), titles, [fixed] * len(indices), path)


def per_class_table(a: Run, b: Run, classes: list[str]) -> Table:
    """Per-class test accuracy of both fine-tuned models and its change, largest change first."""
    ca, cb = (run.json(EVALUATION)["finetuned"]["per_class_accuracy"] for run in (a, b))
    order = sorted(classes, key=lambda c: (-abs(cb[c] - ca[c]), c))
    return Table("Per-class test accuracy of the fine-tuned models, largest change first.",
                 ["class", a.name, b.name, "change"],
                 [[c, percent(ca[c]), percent(cb[c]), points(cb[c] - ca[c])] for c in order], "")


def sentences(paper: str) -> list[str]:
    """The paper cut into units a reader compares: sentences of its prose, rows of its tables;
    headings, images and blank lines left out."""
    units = []
    for line in paper.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "![", "|---", "<")):
            continue
        units += [line] if line.startswith("|") else SENTENCE.split(line)
    return units


def changed_sentences(first: str, second: str) -> list[tuple[str, str]]:
    """The sentences that differ, in paper order: ("-", sentence) for A's, ("+", ...) for B's."""
    a, b = sentences(first), sentences(second)
    changes = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op != "equal":
            changes += [("-", s) for s in a[i1:i2]] + [("+", s) for s in b[j1:j2]]
    return changes


def paper_changes(a: Run, b: Run) -> str:
    """The changed sentences as a Markdown list, or why there are none to show."""
    try:
        first, second = a.read(PAPER), b.read(PAPER)
    except UserError as e:
        return f"No paper to compare: {e}."
    changes = changed_sentences(first, second)
    if not changes:
        return "The two papers say the same."
    return "\n".join(f"- **{escape.markdown(a.name if sign == '-' else b.name)}:** {text}"
                     for sign, text in changes)


def markdown(a: Run, b: Run, examples: int, figures: Path) -> str:
    """The diff page as Markdown; its figures drawn into `figures`."""
    params, pa, pb = params_table(a, b)
    rows_a, rows_b = predictions(a), predictions(b)
    name_a, name_b = escape.markdown(a.name), escape.markdown(b.name)
    parts = [f"# {name_a} → {name_b}", "",
             f"What changed from {name_a} ({code(a.rev)}) to {name_b} ({code(b.rev)}).", "",
             "## Params", "",
             markdown_table(params) if params.rows else "The same params.", "",
             "## Headline numbers", "", markdown_table(headline_table(a, b)), ""]
    if same_test_set((pa, pb), ([r["actual"] for r in rows_a], [r["actual"] for r in rows_b])):
        ok_a = [r["predicted"] == r["actual"] for r in rows_a]
        ok_b = [r["predicted"] == r["actual"] for r in rows_b]
        broken, fixed = discordant(ok_a, ok_b)
        parts += ["## Test images", "",
                  f"On the same {len(rows_a):,} test images, {name_b} gets {len(fixed):,} right "
                  f"that {name_a} got wrong (fixed) and {len(broken):,} wrong that {name_a} got "
                  f"right (broken). McNemar's exact test: "
                  f"{p_value(mcnemar_p(len(broken), len(fixed)))}.", ""]
        for label, indices, good in (("Fixed", fixed, True), ("Broken", broken, False)):
            if indices:
                shown = indices[:examples]
                draw_changed(b, rows_a, rows_b, shown, good, figures / f"{label.lower()}.png")
                parts += [f"![{label}: {plural(len(indices), 'test image')} {name_b} gets "
                          f"{'right' if good else 'wrong'} and {name_a} "
                          f"{'wrong' if good else 'right'}, the first {len(shown)} shown]"
                          f"(figures/{label.lower()}.png)", "",
                          f"*{label}: each image's true class, then {name_a}'s answer → "
                          f"{name_b}'s.*", ""]
        classes = json.loads(b.read(CLASSES))
        parts += ["## Per class", "", markdown_table(per_class_table(a, b, classes)), ""]
    else:
        parts += ["## Test images", "", "The runs were scored on different test sets (their "
                  "test-set params or true classes differ), so their images are not compared.",
                  ""]
    parts += ["## The paper", "", paper_changes(a, b), ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    """Write report/diff/ for the two runs named on the command line."""
    parser = argparse.ArgumentParser(prog="python -m transfer.diff", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", metavar="A", help="experiment, git revision or `workspace`")
    parser.add_argument("second", metavar="B", help="experiment, git revision or `workspace`")
    parser.add_argument("--examples", type=int, default=12, metavar="N",
                        help="fixed and broken test images shown, each (default 12)")
    args = parser.parse_args(argv)
    if args.examples < 1:
        parser.error(f"argument --examples: {args.examples} is not a number of images >= 1")
    a, b = resolve(args.first), resolve(args.second)
    with atomic_path(OUT) as out:
        (out / "figures").mkdir(parents=True)
        text = markdown(a, b, args.examples, out / "figures")
        (out / "diff.md").write_text(text)
        body = publish.html_body(text)
        (out / "diff.html").write_text(publish.page(
            body, f"{a.name} → {b.name}", f"What changed from {a.name} to {b.name}", TEMPLATES,
            out / "figures", embed=True))
    print(f"diff: {OUT / 'diff.md'} and {OUT / 'diff.html'}")


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
