"""The paper's figures as PNG files: image grids, learning curves, confusion matrix, tables.

Every function draws one figure from plain arrays and writes it atomically. Output is
byte-for-byte repeatable: the Agg backend, fixed sizes and no timestamp in the PNG metadata.
Text is drawn as it is: Matplotlib's math text is off, so a class named "$x$" is that name.
The PDF shows every figure at its text's width (TEXT_WIDTH): figures are drawn that wide or
narrower, and no text in them is below MIN_POINTS there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["text.parse_math"] = False  # names from the data are text, never markup
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from transfer.runtime.files import atomic_path  # noqa: E402

DPI = 120
TEXT_WIDTH = 6.5  # inches: the PDF's line (A4 less 2 x 2.2 cm), where figures fill the width
MIN_POINTS = 7.0  # the smallest text a figure may show at that width
SMALL = 7.5  # font size of labels, titles and legends drawn TEXT_WIDTH wide
CORRECT, WRONG = "#1a7f37", "#cf222e"
HEAD, FINETUNED = "#8c959f", "#0969da"
Curve = tuple[Sequence[float], Sequence[float]]
PLAIN_NUMBER = FuncFormatter(lambda value, _: f"{value:g}")  # log axes' ticks, math text off
WALL_TIME = "wall time, fetch to evaluate (min)"


def save(fig: plt.Figure, path: Path) -> None:
    """Write `fig` to `path` as PNG with no varying metadata, and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png", metadata={"Software": None})
    plt.close(fig)


def image_grid(images: np.ndarray, titles: Sequence[str], correct: Sequence[bool], path: Path,
               columns: int = 6) -> None:
    """Images in a grid, each titled in green (correct) or red (wrong)."""
    rows = -(-len(images) // columns)
    side = TEXT_WIDTH / columns
    fig, axes = plt.subplots(rows, columns, figsize=(TEXT_WIDTH, rows * side * 1.3),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title, ok in zip(axes.flat, images, titles, correct):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(title, fontsize=SMALL, color=CORRECT if ok else WRONG)
    fig.tight_layout(pad=0.3, h_pad=0.6)
    save(fig, path)


def hero(labels: Sequence[str], accuracies: Sequence[float],
         intervals: Sequence[tuple[float, float]], images: np.ndarray, titles: Sequence[str],
         correct: Sequence[bool], path: Path) -> None:
    """The picture at the top: each model's test accuracy with its 95% interval as bars (the
    last one the result), beside test images with the result's predictions."""
    fig = plt.figure(figsize=(TEXT_WIDTH, 2.7))
    grid = fig.add_gridspec(2, 6, width_ratios=[1.2, 1.2, 1, 1, 1, 1], wspace=0.15, hspace=0.35)
    ax = fig.add_subplot(grid[:, :2])
    y = np.arange(len(labels))[::-1]
    low = [a - i[0] for a, i in zip(accuracies, intervals)]
    high = [i[1] - a for a, i in zip(accuracies, intervals)]
    colors = [HEAD] * (len(labels) - 1) + [FINETUNED]
    ax.barh(y, accuracies, xerr=[low, high], color=colors, capsize=2, height=0.6)
    for at, value in zip(y, accuracies):
        ax.text(value / 2, at, f"{100 * value:.1f}%", color="white", va="center",
                ha="center", fontsize=SMALL + 1, fontweight="bold")
    ax.set_yticks(y, labels, fontsize=SMALL)
    ax.set_xlim(0, 1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{100 * value:.0f}%"))
    ax.tick_params(axis="x", labelsize=SMALL)
    ax.set_xlabel("test accuracy (95% CI)", fontsize=SMALL)
    for spine in ("top", "right"):
        ax.spines[spine].set_visible(False)
    for k, (image, title, ok) in enumerate(zip(images[:8], titles, correct)):
        cell = fig.add_subplot(grid[k // 4, 2 + k % 4])
        cell.imshow(image, interpolation="bilinear")
        cell.set_title(title, fontsize=SMALL, color=CORRECT if ok else WRONG)
        cell.axis("off")
    fig.subplots_adjust(left=0.19, right=0.99, top=0.9, bottom=0.17)
    save(fig, path)


def learning_curves(phases: dict[str, dict[str, dict[str, Curve]]], finetune_start: int | None,
                    path: Path) -> None:
    """Accuracy and loss per epoch, training and validation, both phases on one epoch axis
    counted from 1, as the text counts them.

    `phases` maps a phase name to {"accuracy" | "loss": {"train" | "validation": (x, y)}},
    x DVCLive's steps (from 0); `finetune_start`: the head's epochs, after which fine-tuning
    starts.
    """
    fig, axes = plt.subplots(1, 2, figsize=(TEXT_WIDTH, 3.0))
    for ax, metric in zip(axes, ("accuracy", "loss")):
        for phase, color in zip(phases, (HEAD, FINETUNED)):
            for split, style in (("train", "--"), ("validation", "-")):
                x, y = phases[phase].get(metric, {}).get(split, ((), ()))
                if len(x):
                    ax.plot(np.asarray(x) + 1, y, style, color=color, marker="o",
                            markersize=3, label=f"{phase}, {split}")
        if finetune_start is not None:
            ax.axvline(finetune_start + 0.5, color="black", linewidth=0.8, linestyle=":")
            ax.annotate("fine-tuning starts", (finetune_start + 0.5, 1), xytext=(3, -10),
                        xycoords=("data", "axes fraction"), textcoords="offset points",
                        fontsize=SMALL)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.ticklabel_format(axis="y", useOffset=False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=SMALL, frameon=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    save(fig, path)


def confusion_matrix(matrix: np.ndarray, classes: Sequence[str], path: Path) -> None:
    """Counts of (true, predicted) pairs, shaded by the share of each true class."""
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    width = min(2.2 + 0.45 * len(classes), TEXT_WIDTH)
    fig, ax = plt.subplots(figsize=(width, width - 1))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    if len(classes) <= 20:
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=SMALL,
                    color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right", fontsize=SMALL)
    ax.set_yticks(range(len(classes)), classes, fontsize=SMALL)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    save(fig, path)


def per_class_accuracy(classes: Sequence[str], head: Sequence[float],
                       finetuned: Sequence[float], path: Path) -> None:
    """Test accuracy per class, head-only next to fine-tuned."""
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(min(max(5.0, 0.6 * len(classes) + 1.5), TEXT_WIDTH), 3.2))
    ax.bar(x - 0.2, head, 0.4, color=HEAD, label="head only")
    ax.bar(x + 0.2, finetuned, 0.4, color=FINETUNED, label="fine-tuned")
    ax.set_xticks(x, classes, rotation=45, ha="right", fontsize=SMALL)
    ax.set_ylim(0, 1)
    ax.set_ylabel("test accuracy")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=SMALL, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2,
              frameon=False)  # above the axes: it covers no bar
    fig.tight_layout()
    save(fig, path)


def finish_accuracy(fig: plt.Figure, ax: plt.Axes, path: Path) -> None:
    """Label the y axis as test accuracy, add the grid and legend, and save `fig` to `path`."""
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=SMALL)
    fig.tight_layout()
    save(fig, path)


def accuracy_against(names: Sequence[str], x: Sequence[float], x_label: str,
                     head: Sequence[float], finetuned: Sequence[float], path: Path) -> None:
    """Test accuracy of each run, head and fine-tuned, against `x` (a wall time, or the one
    param the runs vary; log scale when it spans a factor of 10 or more)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.scatter(x, head, color=HEAD, label="head only", zorder=3)
    ax.scatter(x, finetuned, color=FINETUNED, label="fine-tuned", zorder=3)
    for name, at, y in zip(names, x, finetuned):
        ax.annotate(name, (at, y), xytext=(4, 4), textcoords="offset points", fontsize=SMALL)
    if min(x) > 0 and max(x) >= 10 * min(x):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(PLAIN_NUMBER)
    ax.set_xlabel(x_label)
    finish_accuracy(fig, ax, path)


def accuracy_vs_fraction(fractions: Sequence[float], head: Sequence[float],
                         finetuned: Sequence[float], marked: Sequence[bool], path: Path) -> None:
    """Test accuracy against the share of the training data used, head and fine-tuned as two
    lines (log scale); the runs in `marked` ringed."""
    order = np.argsort(fractions)
    x = np.asarray(fractions, dtype=float)[order] * 100
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for values, color, label in ((head, HEAD, "head on the frozen base"),
                                 (finetuned, FINETUNED, "fine-tuned")):
        y = np.asarray(values, dtype=float)[order]
        ax.plot(x, y, marker="o", color=color, label=label, zorder=3)
        ringed = np.asarray(marked, dtype=bool)[order]
        ax.scatter(x[ringed], y[ringed], s=140, facecolors="none", edgecolors="black",
                   zorder=4, label="this paper's run" if label == "fine-tuned" else None)
    ax.set_xscale("log")
    ax.set_xticks(x, [f"{v:g}%" for v in x])
    ax.minorticks_off()
    ax.set_xlabel("share of the training data")
    finish_accuracy(fig, ax, path)


def table_image(header: Sequence[str], rows: Sequence[Sequence[str]], path: Path) -> None:
    """A table drawn as a picture, for editors that render no Markdown tables (Medium)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    fig = plt.figure(figsize=(min(0.085 * sum(widths) + 0.4, 12), 0.3 * (len(rows) + 1) + 0.1))
    table = fig.add_axes((0, 0, 1, 1)).table(
        cellText=[list(r) for r in rows] or None, colLabels=list(header), loc="center",
        cellLoc="left", colWidths=[w / sum(widths) for w in widths])
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for (row, _), cell in table.get_celld().items():
        cell.set_edgecolor("#d0d7de")
        if row == 0:
            cell.set_text_props(weight="bold")
            cell.set_facecolor("#f6f8fa")
    fig.axes[0].axis("off")
    save(fig, path)


def predictions(images: Sequence[np.ndarray], names: Sequence[str], top: Sequence[Sequence[
        tuple[str, float]]], path: Path) -> None:
    """Each image beside a bar chart of its top classes and their probabilities."""
    fig, axes = plt.subplots(len(images), 2, figsize=(7, 2.2 * len(images)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.6]})
    for (image_ax, bars_ax), image, name, ranked in zip(axes, images, names, top):
        image_ax.imshow(image)
        image_ax.set_title(name, fontsize=9)
        image_ax.axis("off")
        labels, probs = zip(*ranked)
        bars_ax.barh(range(len(ranked)), probs, color=[FINETUNED] + [HEAD] * (len(ranked) - 1))
        bars_ax.set_yticks(range(len(ranked)), labels)
        bars_ax.invert_yaxis()
        bars_ax.set_xlim(0, 1)
        bars_ax.set_xlabel("probability")
        for y, p in enumerate(probs):
            bars_ax.text(min(p + 0.02, 0.85), y, f"{p:.1%}", va="center", fontsize=8)
    fig.tight_layout()
    save(fig, path)


def image_pairs(pairs: Sequence[tuple[np.ndarray, np.ndarray]], titles: Sequence[tuple[str, str]],
                path: Path, columns: int = 3) -> None:
    """Pairs of images side by side (a test image and its closest other image), titled."""
    rows = -(-len(pairs) // columns)
    side = TEXT_WIDTH / (2 * columns)
    fig, axes = plt.subplots(rows, 2 * columns, figsize=(TEXT_WIDTH, rows * side * 1.5),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, ((left, right), (first, second)) in enumerate(zip(pairs, titles)):
        for ax, image, title in ((axes.flat[2 * k], left, first),
                                 (axes.flat[2 * k + 1], right, second)):
            ax.imshow(image, interpolation="nearest")
            ax.set_title(title, fontsize=SMALL)
    fig.tight_layout(pad=0.3)
    save(fig, path)


def reliability(panels: dict[str, dict[str, tuple[np.ndarray, ...]]], path: Path) -> None:
    """Reliability diagrams: per confidence bin, accuracy against mean confidence, one panel
    per model, before and after temperature scaling, and under them the images in each bin
    (log scale), so a bin of a few images reads as one; `panels` maps a model's name to
    {"before" | "after": (count, accuracy, confidence)} per equal-width bin."""
    fig, axes = plt.subplots(2, len(panels), figsize=(TEXT_WIDTH, 4.2), squeeze=False,
                             sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for (ax, counts), (name, curves) in zip(zip(axes[0], axes[1]), panels.items()):
        ax.plot([0, 1], [0, 1], ":", color="black", linewidth=0.8, label="perfect calibration")
        for (when, (count, accuracy, confidence)), color in zip(curves.items(),
                                                                (HEAD, FINETUNED)):
            used = count > 0
            ax.plot(confidence[used], accuracy[used], marker="o", markersize=3, color=color,
                    label=f"{when} temperature scaling")
            edges = np.linspace(0, 1, len(count) + 1)
            counts.stairs(np.maximum(count, 0.5), edges, color=color, baseline=0.5,
                          label=f"{when}")
        ax.set_title(name, fontsize=SMALL + 1)
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=SMALL, loc="upper left")
        counts.set_yscale("log")
        counts.yaxis.set_major_formatter(PLAIN_NUMBER)
        counts.set_ylim(0.5, None)
        counts.set_ylabel("images", fontsize=SMALL)
        counts.set_xlabel("confidence (mean of the bin)")
        counts.grid(alpha=0.3)
    fig.tight_layout()
    save(fig, path)


def class_maps(images: np.ndarray, maps: np.ndarray, titles: Sequence[str],
               correct: Sequence[bool], path: Path, columns: int = 6) -> None:
    """Each image with its class-activation map laid over it (stretched to the image)."""
    rows = -(-len(images) // columns)
    side = TEXT_WIDTH / columns
    fig, axes = plt.subplots(rows, columns, figsize=(TEXT_WIDTH, rows * side * 1.3),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, heat, title, ok in zip(axes.flat, images, maps, titles, correct):
        side = image.shape[0]
        ax.imshow(image, interpolation="nearest")
        ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear",
                  extent=(-0.5, side - 0.5, side - 0.5, -0.5))
        ax.set_title(title, fontsize=SMALL, color=CORRECT if ok else WRONG)
    fig.tight_layout(pad=0.3, h_pad=0.6)
    save(fig, path)
