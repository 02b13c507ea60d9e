"""Stage `report`: render the run as a journal-style paper and as an article, from the files
the pipeline wrote.

Two cuts of one template (`report/templates/paper.md.j2`): the paper (`report/paper.md`, its
PDF typeset with Typst by `transfer.paper.typeset`, and `report/paper.html`, one standalone
file: full Methods, tables and appendices) and the article (`report/site/`, a page for a static
host or Medium's import, with the PDF beside it; `report/devto.md` for dev.to and Hashnode;
`report/medium.md`, tables as images: the story and the results, a link to the full paper
instead of the parameters, hashes and versions). The run is read once (`transfer.paper.run`),
its results computed once into frozen values (`findings`, `checks`, `comparison`, `story`),
the figures drawn from them (`figures`); the template gets those values and nothing that
runs. Same inputs, same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

from transfer.paper import figures, publish, typeset
from transfer.paper.checks import Checks, checks
from transfer.paper.comparison import Experiments, Study, experiments, study
from transfer.paper.escape import Markdown
from transfer.paper.experiments import format_value
from transfer.paper.findings import Findings, findings
from transfer.paper.run import Run, frozen, load_run
from transfer.paper.story import (
    Choice,
    Front,
    Published,
    augmentation,
    choices,
    cost_sentence,
    front,
    hardest_sentence,
    published,
)
from transfer.paper.wording import Table, origin, percent, render, size
from transfer.params.whole import Params, load_params
from transfer.runtime.files import atomic_path
from transfer.runtime.paths import (
    DEVTO,
    FIGURES,
    HTML,
    MEDIUM,
    PAPER,
    PDF,
    REPORT,
    SITE,
    TEMPLATES,
)
from transfer.runtime.stage import run_stage

USED = {  # the params Methods lists, with the values the run used (`auto` resolved)
    "data": ("fraction", "val_split", "image_size", "resize"),
    "model": ("backbone", "weights", "input_size", "cut_layer"),
    "train": ("epochs", "batch_size", "learning_rate", "dropout", "hidden_units", "patience"),
    "finetune": ("layers", "epochs", "batch_size", "learning_rate", "weight_decay", "warmup",
                 "label_smoothing", "augment"),
    "evaluate": ("flip", "calibrate"),
    "audit": ("candidates", "max_shift", "min_correlation", "min_cosine")}


@dataclass(frozen=True)
class Paper:
    """Everything the templates show: frozen values, no code."""

    run: Run
    p: Params  # the run's params, `auto` resolved
    front: Front
    found: Findings
    checks: Checks
    study: Study | None
    experiments: Experiments | None
    tables: Mapping[str, Table]
    choices: tuple[Choice, ...]
    published: Published | None
    auto: Mapping  # which params were `auto`, and what the recipe's rules saw
    words: Mapping[str, str]  # phrases computed from the numbers


def parameters_table(run: Run, augmented: str) -> Table:
    """One row per section: the values this run used, `auto` resolved, unset ones left out
    (`augmented`: the fine-tuning augmentation in words)."""
    rows = [["seed", str(run.params.seed)]]
    for section, keys in USED.items():
        values = getattr(run.params, section)
        shown = {key: getattr(values, key) for key in keys}
        if section == "data":
            shown["image_size"] = run.prepared["image_size"]
        if section == "finetune":
            shown["augment"] = augmented
        rows.append([section, ", ".join(f"{key} {format_value(value)}"
                                        for key, value in shown.items() if value is not None)])
    return Table(Markdown("The values this run used: the params that shape the result, each "
                          "`auto` resolved (the full `params.yaml` closes the paper)."),
                 ["section", "values"], rows, "table-parameters.png")


def results_table(run: Run, found: Findings) -> Table:
    """Each model's test scores; the fine-tuned model with and without test-time flips."""
    models = [("head only", found.head)]
    head_kept = run.skipped or run.kept_head
    if found.unflipped and not head_kept:
        models.append(("fine-tuned, no flips", found.unflipped))
    kept = "head" if head_kept else "fine-tuned"
    models.append((kept + (" + flips" if found.unflipped else ""), found.tuned))
    return Table(
        f"Test-set results ({run.counts['test']:,} images) of the head alone and of the "
        f"fine-tuned model{', without and with test-time flips' if found.unflipped else ''}. "
        f"The interval is Wilson's 95% score interval.",
        ["model", "test accuracy", "95% CI", "loss", f"top-{found.top_k} accuracy", "correct"],
        [[name, percent(s.accuracy), f"{percent(s.ci[0])} – {percent(s.ci[1])}",
          f"{s.loss:.3f}", percent(s.top_k), f"{s.correct:,} / {s.count:,}"]
         for name, s in models], "table-results.png")


def confused_table(run: Run, found: Findings) -> Table:
    """The most frequent confusions."""
    per_class = run.evaluation["finetuned"]["per_class_count"]
    return Table("The most frequent confusions of the fine-tuned model on the test set.",
                 ["true class", "predicted as", "images", "share of the class"],
                 [[a, b, f"{n:,}", percent(n / per_class[a])] for (a, b), n in found.confused],
                 "table-confused.png")


def paper(params: Params) -> Paper:
    """Read the run and compute everything the paper says, once."""
    run = load_run(params)
    found, checked = findings(run), checks(run)
    studied, compared = study(run.study), experiments(run.experiments)
    augmented = augmentation(run.params)
    tables = {"parameters": parameters_table(run, augmented),
              "results": results_table(run, found),
              "confused": confused_table(run, found), **checked.tables}
    if studied:
        tables["study"] = studied.table
    if compared:
        tables["experiments"] = compared.table
    tune = run.tuning
    auto = {"input_size": params.model.input_size == "auto",
            "finetune": "auto" in (params.finetune.batch_size, params.finetune.learning_rate),
            "native": run.prepared["native_size"], "layers": tune["cached_stride"] is not None,
            "cached_stride": tune["cached_stride"],
            "thumbnail_scale": run.prepared["thumbnail_scale"]}
    words = {"augmentation": augmented,
             "cache_size": size(tune["cache_bytes"]),
             "origin": origin(params.model.backbone), "cost": cost_sentence(run),
             "hardest": hardest_sentence(found)}
    return Paper(run=run, p=run.params, front=front(run, found), found=found, checks=checked,
                 study=studied, experiments=compared, tables=frozen(tables),
                 choices=choices(run, found, checked, TEMPLATES / "choices.yaml"),
                 published=published(run), auto=frozen(auto), words=frozen(words))


def template_names(values: Paper) -> dict[str, object]:
    """The template's names: the fields of `values`."""
    return {field.name: getattr(values, field.name) for field in fields(values)}


def main() -> None:
    """Compute the paper's values, draw the figures, render both cuts in all their forms and
    write them atomically."""
    params = load_params()
    values = paper(params)
    names, fr = template_names(values), values.front
    with atomic_path(FIGURES) as folder:
        folder.mkdir()
        figures.draw(values.run, values.found, values.checks, values.study, values.experiments,
                     folder)
        full = render(names, TEMPLATES, full=True, medium=False)
        article, medium = (render(names, TEMPLATES, full=False, medium=m) for m in (False, True))
        figures.table_pictures(values.tables, medium, folder)
        source = typeset.typst_source(full, names, TEMPLATES, folder.name)
        texts = {PAPER: full, MEDIUM: medium,
                 HTML: publish.page(publish.html_body(full), fr.title, fr.description,
                                    TEMPLATES, folder, embed=True),
                 DEVTO: publish.devto(article, fr.title, fr.description, params.report)}
        pdf = typeset.pdf(source, REPORT, fr.pdf_date)
        site = publish.page(publish.html_body(article), fr.title, fr.description, TEMPLATES,
                            folder, embed=False, canonical=params.report.site_url,
                            image=publish.cover(params.report))
        with atomic_path(SITE) as tmp:
            publish.write_site(site, folder, tmp, pdf)
    for path, text in texts.items():
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    with atomic_path(PDF) as tmp:
        tmp.write_bytes(pdf)
    words = len(publish.prose(article).split())
    print(f"report: {PAPER}, {PDF}, {HTML}, {SITE}/, {MEDIUM}, {DEVTO} and "
          f"{len(list(FIGURES.iterdir()))} figures; the article's prose {words:,} words, the "
          f"paper's {len(publish.prose(full).split()):,}")


if __name__ == "__main__":
    run_stage(main)  # its time is printed, not recorded: metrics/time holds the run's stages
