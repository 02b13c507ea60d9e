"""What the paper says in words that depend on the numbers: its title, subtitle and
description, the reasons for each choice the run made ("What we tried and why"), and the
Discussion's sentences, each written only where its numbers bear it out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from transfer.paper.checks import Checks
from transfer.paper.escape import Markdown, markdown
from transfer.paper.findings import Findings
from transfer.paper.run import Run
from transfer.paper.wording import code, percent, points
from transfer.params.whole import Params
from transfer.training.recipe import is_photo

DEFAULTS = Params()
PUBLISHED = {  # dataset -> (citation key, model, test accuracy) of a published transfer result
    "CIFAR-10": ("tan2019", "EfficientNet-B7", 0.989)}


@dataclass(frozen=True)
class Front:
    """The paper's first screen: title, subtitle, one-sentence description, date."""

    title: str
    subtitle: str
    description: str
    date: str
    pdf_date: date | None


@dataclass(frozen=True)
class Choice:
    """One choice the run made: what it is, the value, and why (Markdown)."""

    name: str
    value: Markdown
    why: Markdown


def hardware(device: str) -> str:
    """The machine in a few words: '2 CPU cores', or the GPUs."""
    cores = re.search(r"(\d+) cores, no GPU", device)
    if cores:
        return "1 CPU core" if cores.group(1) == "1" else f"{cores.group(1)} CPU cores"
    return device.split(" (host CPU")[0] or "an unrecorded device"


def front(run: Run, found: Findings) -> Front:
    """Title, subtitle, description and date, from `report.*` where set, else the results."""
    p, backbone = run.params, run.params.model.backbone
    machine = hardware(run.features.get("device", ""))
    if p.report.title:
        title = p.report.title
    elif p.model.weights == "none":
        title = f"{backbone} on {run.dataset} with random weights: a pipeline check"
    else:
        spent = f" in {run.minutes:.0f} minutes" if run.minutes else ""
        title = f"{percent(found.tuned.accuracy)} on {run.dataset}{spent} on {machine} with " \
            f"{backbone}"
    source = "ImageNet" if p.model.weights == "imagenet" else "pretrained"
    if p.model.weights == "none":
        subtitle = ("The numbers exercise the pipeline with random weights; they say nothing "
                    "about transfer learning")
    elif run.skipped or run.kept_head:
        subtitle = (f"A classifier on {backbone}'s frozen {source} features, from one "
                    "reproducible pipeline that writes its own paper")
    else:
        head, tuned = percent(found.head.accuracy), percent(found.tuned.accuracy)
        outcome = (f"lifts a frozen-feature baseline from {head} to {tuned}" if found.p < 0.05
                   and found.gain > 0 else
                   f"lowers a frozen-feature baseline from {head} to {tuned}" if found.p < 0.05
                   else f"scores {tuned} against a frozen-feature baseline's {head}, no "
                   "difference this test set can tell")
        subtitle = (f"Fine-tuning {backbone} from {source} weights {outcome}, in one "
                    "reproducible pipeline that writes its own paper")
    description = p.report.description or (
        f"{backbone} transferred to {run.dataset}: {percent(found.head.accuracy)} test accuracy "
        "for a head on the frozen base's features" + ("." if run.skipped else
                                                       f", {percent(found.tuned.accuracy)} "
                                                       "after fine-tuning."))
    day = None
    for text in (p.report.date, run.provenance.commit_day):
        try:
            day = date.fromisoformat(text)
            break
        except ValueError:
            continue
    return Front(title=title, subtitle=subtitle, description=description,
                 date=p.report.date or run.provenance.commit_date, pdf_date=day)


def augmentation(params: Params) -> str:
    """The fine-tuning augmentation in words."""
    a = params.finetune.augment
    parts = (["random horizontal flips"] if a.flip else []) + [
        f"random {name} up to {value:g}" for name, value in
        (("rotation", a.rotation), ("zoom", a.zoom)) if value]
    return ", ".join(parts) or "none"


def choices(run: Run, found: Findings, checks: Checks, evidence_file: Path) -> tuple[Choice, ...]:
    """One entry per choice the run made, with its reason: the project's measurement where the
    default stands (`evidence_file`), the user's own setting where it does not, and what this
    run measured itself where it did."""
    evidence = yaml.safe_load(evidence_file.read_text())
    p, asked = run.params, run.requested
    photos = is_photo(run.prepared["median_side"])
    kinds = {"input_size": p.model.input_size == run.prepared["native_size"],
             "layers": p.finetune.layers == "all"}  # what the rules chose, not the image type

    def reason(key: str, default: bool, own: str = "") -> Markdown:
        """The evidence for `key` where the run kept its default (with the file that holds the
        measurement), else the user's setting; then `own`, what this run measured."""
        entry = evidence[key]
        kind = "photos" if kinds.get(key, photos) else "thumbnails"
        text = entry.get(kind, entry.get("why", "")).rstrip(".")
        source = f" ({code(entry['source'])})" if "source" in entry else ""
        said = f"{text}{source}." if default else "Set in `params.yaml` for this run."
        return Markdown(f"{said} {markdown(own)}".strip())

    tune_fit = found.fits.get("fine-tuning")
    entries = [
        Choice("Backbone", code(p.model.backbone),
               reason("backbone", asked.model.backbone == DEFAULTS.model.backbone)),
        Choice("Input size", Markdown(f"{p.model.input_size} px"),
               reason("input_size", asked.model.input_size == "auto"))]
    if not run.skipped:
        layers = "the whole base" if p.finetune.layers == "all" else \
            f"the top {p.finetune.layers} layers"
        entries.append(Choice("Layers trained", markdown(layers),
                              reason("layers", asked.finetune.layers == "auto")))
        if run.cached:
            stride = run.tuning["cached_stride"]
            entries.append(Choice("Cached cut", markdown(
                f"stride {stride}" if stride else "below the trained layers"), reason(
                "cache", True, "Here the cache held each training image" + (
                    " and its mirror." if p.finetune.augment.flip else "."))))
        own = ""
        if tune_fit:
            own = (f"Here validation accuracy was still rising at the last epoch "
                   f"({percent(tune_fit.validation)})." if
                   tune_fit.improving else
                   f"Here validation accuracy peaked at epoch "
                   f"{run.tune_live['best_epoch'] - run.head_live['epochs']} of "
                   f"{p.finetune.epochs} ({percent(run.tune_live['best_val_accuracy'])}).")
        entries.append(Choice("Epochs", markdown(str(p.finetune.epochs)), reason(
            "epochs", asked.finetune.epochs == DEFAULTS.finetune.epochs, own)))
        entries.append(Choice("Augmentation", markdown(augmentation(p)), reason(
            "augmentation", asked.finetune.augment == DEFAULTS.finetune.augment)))
    if p.evaluate.flip and found.unflipped:
        entries.append(Choice("Test-time flips", Markdown("on"), reason("flips", True, (
            f"Here they changed test accuracy by {points(found.flip_gain)} points, from "
            f"{percent(found.unflipped.accuracy)} to {percent(found.tuned.accuracy)}."))))
    calibrated = checks.calibration["finetuned"]
    before, after = (percent(calibrated[key], 2) for key in ("ece", "ece_calibrated"))
    helped = calibrated["ece_calibrated"] < calibrated["ece"]
    own = (f"Here the temperature is {calibrated['temperature']:.2f} and the calibration error "
           f"{'went' if p.evaluate.calibrate else 'would go'} from {before} to {after}"
           + ("." if helped else ": on this test set it did not help."))
    entries.append(Choice("Calibration", Markdown("on" if p.evaluate.calibrate else "off"),
                          reason("calibration", asked.evaluate.calibrate ==
                                 DEFAULTS.evaluate.calibrate, own)))
    return tuple(entries)


def change(gain: float) -> str:
    """A change in points in words: 'up 21.7 points', 'down 0.4 points', 'unchanged'."""
    if round(100 * gain, 1) == 0:
        return "unchanged"
    return f"{'up' if gain > 0 else 'down'} {abs(100 * gain):.1f} points"


def hardest_sentence(found: Findings) -> str:
    """The two hardest classes after fine-tuning and what fine-tuning did for them, and the
    class it helped most where that is another."""
    if len(found.classes) < 2:
        return ""
    hardest = found.classes[:2]
    changes = " and ".join(f"{c.name} ({percent(c.tuned)}, {change(c.gain)} from the head's "
                           f"{percent(c.head)})" for c in hardest)
    helped = max(found.classes, key=lambda c: (c.gain, c.name))
    said = f"The hardest classes for the final model are {changes}."
    if helped.gain > 0 and helped not in hardest and len(found.classes) > 2:
        said += f" Fine-tuning helped {helped.name} most, {change(helped.gain)}."
    return said


def cost_sentence(run: Run) -> str:
    """What the run cost on its hardware."""
    if run.minutes is None:
        return ""
    machine = run.features.get("device", "an unrecorded device")
    tuned = "" if run.finetune_seconds is None or run.skipped else (
        f" (fine-tuning {run.finetune_seconds / 60:.1f} of them)")
    return (f"The whole run, from the image files to the exported model, took "
            f"{run.minutes:.1f} minutes{tuned} on {machine}.")


@dataclass(frozen=True)
class Published:
    """A published transfer result on the same data: its citation key, model and accuracy."""

    key: str
    model: str
    accuracy: float


def published(run: Run) -> Published | None:
    """The published result the run is compared with, if its dataset has one."""
    found = PUBLISHED.get(run.dataset)
    return Published(*found) if found and run.params.model.weights == "imagenet" else None
