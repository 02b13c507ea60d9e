"""The paper's figures as the PDF shows them: every text at least MIN_POINTS at the text's
width, epochs counted as the text counts them, the reliability diagram's bin counts."""

from __future__ import annotations

import matplotlib.text
import numpy as np
import pytest

from transfer.paper import charts

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]
RNG = np.random.default_rng(0)


@pytest.fixture
def drawn(monkeypatch, tmp_path) -> dict:
    """The figures the chart functions make, by file name, kept open instead of written."""
    figures = {}
    monkeypatch.setattr(charts, "save", lambda fig, path: figures.__setitem__(path.name, fig))
    return figures


def curves(epochs: int, first: int = 0) -> dict:
    """DVCLive-like curves of one phase: steps from `first`, validation peaking at its
    second-to-last epoch."""
    steps = list(range(first, first + epochs))
    val = [0.5 + 0.05 * i for i in range(epochs)]
    val[-1] = val[-2] - 0.01
    loss = [1 - v for v in val]
    return {"accuracy": {"train": (steps, [v + 0.02 for v in val]), "validation": (steps, val)},
            "loss": {"train": (steps, loss), "validation": (steps, loss)}}


def draw_paper_figures(tmp_path) -> None:
    """Every figure the PDF shows, from plausible values of a ten-class run."""
    images = RNG.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    charts.image_grid(images, ["automobile\n(true: airplane)"] * 24, [False] * 24,
                      tmp_path / "examples.png")
    charts.image_grid(images[:16], ["automobile → airplane\n99.9%"] * 16, [False] * 16,
                      tmp_path / "misclassified.png", columns=4)
    charts.learning_curves({"head": curves(8), "fine-tuning": curves(5, first=8)}, 8,
                           tmp_path / "learning-curves.png")
    matrix = RNG.integers(0, 1000, (10, 10))
    charts.confusion_matrix(matrix, CLASSES, tmp_path / "confusion-matrix.png")
    charts.per_class_accuracy(CLASSES, RNG.random(10), RNG.random(10),
                              tmp_path / "per-class-accuracy.png")
    charts.accuracy_vs_fraction([0.01, 0.1, 1.0], [0.5, 0.7, 0.8], [0.55, 0.8, 0.9],
                                [False, False, True], tmp_path / "study.png")
    charts.accuracy_against(["lr-high", "defaults"], [20.0, 23.0], charts.WALL_TIME,
                            [0.78, 0.79], [0.91, 0.92], tmp_path / "experiments.png")
    charts.image_pairs([(images[i], images[i + 1]) for i in range(12)],
                       [("test 1234", "train 43210\nnear, r=0.97")] * 12,
                       tmp_path / "near-copies.png")
    bins = (np.array([0, 1, 3, 10, 40, 100, 300, 500, 800, 1200, 1500, 2000, 2500, 3000, 3500]),
            np.linspace(0.1, 1, 15), np.linspace(0.03, 0.97, 15))
    charts.reliability({"head only": {"before": bins, "after": bins},
                        "fine-tuned": {"before": bins, "after": bins}},
                       tmp_path / "reliability.png")
    charts.class_maps(images[:12], RNG.random((12, 8, 8)), ["automobile\n(true: airplane)"] * 12,
                      [False] * 12, tmp_path / "class-maps.png")
    charts.hero(["frozen features", "fine-tuned", "fine-tuned + flips"], [0.79, 0.92, 0.923],
                [(0.78, 0.80), (0.91, 0.93), (0.918, 0.928)], images[:8],
                ["automobile\n(true: airplane)"] * 8, [False] * 8, tmp_path / "hero.png")


def test_no_text_below_seven_points_in_the_pdf(drawn, tmp_path):
    """Each figure fills the PDF's text width: every text in it (tick labels included), scaled
    with it, is at least MIN_POINTS there, and none is unrendered math text."""
    draw_paper_figures(tmp_path)
    assert len(drawn) == 11
    for name, fig in drawn.items():
        fig.canvas.draw()  # tick labels get their text
        scale = charts.TEXT_WIDTH / fig.get_figwidth()
        assert scale >= 1.0 - 1e-9, (name, fig.get_figwidth())  # never shrunk to fit
        for text in fig.findobj(matplotlib.text.Text):
            if text.get_visible() and text.get_text().strip():
                points = text.get_fontsize() * scale
                assert points >= charts.MIN_POINTS, (name, text.get_text(), points)
                assert "mathdefault" not in text.get_text(), (name, text.get_text())


def test_learning_curves_count_epochs_from_one(drawn, tmp_path):
    """The figure's epoch axis counts as the text does (`best_epoch` from 1): the head's best
    validation epoch is drawn at its number, fine-tuning starts after the head's last."""
    charts.learning_curves({"head": curves(8), "fine-tuning": curves(5, first=8)}, 8,
                           tmp_path / "learning-curves.png")
    ax = drawn["learning-curves.png"].axes[0]
    line = next(line for line in ax.get_lines() if line.get_label() == "head, validation")
    x, y = line.get_data()
    best_epoch = int(np.argmax(curves(8)["accuracy"]["validation"][1])) + 1  # fit_logged's
    assert x[0] == 1 and x[np.argmax(y)] == best_epoch == 7
    start = [line for line in ax.get_lines() if line.get_linestyle() == ":"][0].get_xdata()[0]
    assert 8 < start < 9


def test_reliability_diagram_shows_bin_counts(drawn, tmp_path):
    """Under each panel, the images in each bin, the empty ones too."""
    draw_paper_figures(tmp_path)
    fig = drawn["reliability.png"]
    counts = [ax for ax in fig.axes if ax.get_ylabel() == "images"]
    assert len(counts) == 2 and all(ax.get_yscale() == "log" for ax in counts)
    steps = counts[0].patches[0].get_data()
    assert np.array_equal(steps.values[1:4], [1, 3, 10]) and len(steps.edges) == 16
