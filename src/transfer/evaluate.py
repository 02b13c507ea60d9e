"""Stage `evaluate`: score the head-only and the fine-tuned model on the test set; export.

The exported model takes raw images in 0-255 (Resizing, backbone preprocessing, base, head;
with `evaluate.flip`, the probabilities averaged over each image and its mirror image, see
`transfer.models.flip_average`), is compiled, and saved as `models/model.keras` and
`models/cifar10.h5`. The fine-tuned model's test-set pass runs on `evaluate.engine`
(`transfer.models.engines`). Writes
`metrics/evaluate.json` and `eval/predictions.csv` (one row per test image; `dvc plots`
draws the confusion matrix from its `actual` and `predicted` columns).
"""

from __future__ import annotations

import csv
from pathlib import Path

import keras
import numpy as np

from transfer.data.arrays import load_split
from transfer.models import engines
from transfer.models import flip_average as test_time
from transfer.models.saving import save_model
from transfer.params.evaluation import EvaluateStageParams
from transfer.params.fields import load_params
from transfer.runtime.files import atomic_path, read_json, write_json
from transfer.runtime.paths import (
    CLASSES,
    EVALUATION,
    EXPORTS,
    FEATURES,
    FINETUNED,
    HEAD,
    PREDICTIONS,
    PREPARED,
    STAGE_TIMES,
)
from transfer.runtime.stage import run_stage


def scores(probs: np.ndarray, labels: np.ndarray, classes: list[str], top_k: int) -> dict:
    """Accuracy, cross-entropy loss, top-k accuracy and per-class accuracy of predictions."""
    k = min(top_k, len(classes))
    predicted = probs.argmax(axis=1)
    true_prob = probs[np.arange(len(labels)), labels]
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    correct = predicted == labels
    return {
        "accuracy": float(correct.mean()),
        "loss": float(-np.log(np.clip(true_prob, 1e-7, 1)).mean()),
        f"top_{k}_accuracy": float((top == labels[:, None]).any(axis=1).mean()),
        "correct": int(correct.sum()),
        "count": len(labels),
        "per_class_accuracy": {c: float(correct[labels == i].mean())
                               for i, c in enumerate(classes)},
        "per_class_count": {c: int((labels == i).sum()) for i, c in enumerate(classes)},
    }


def write_predictions(path: Path, classes: list[str], labels: np.ndarray,
                      finetuned: np.ndarray, head: np.ndarray) -> None:
    """One CSV row per test image: true class, both models' predictions and confidences."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "actual", "predicted", "confidence",
                         "head_predicted", "head_confidence"])
        for i, (y, pf, ph) in enumerate(zip(labels, finetuned, head)):
            writer.writerow([i, classes[y], classes[pf.argmax()], f"{pf.max():.6f}",
                             classes[ph.argmax()], f"{ph.max():.6f}"])


def main() -> None:
    """Evaluate both models on the test split and export the compiled fine-tuned model."""
    params = load_params(EvaluateStageParams)
    p = params.evaluate
    classes = read_json(CLASSES)
    x_test, y_test = load_split(PREPARED, "test")
    model = keras.models.load_model(FINETUNED)
    if p.flip:
        model = test_time.flip_averaged(model)
    # Compiled so that `load_model(...).evaluate(...)` works as it is (the assignment's check).
    # Plain SGD keeps no per-weight state: what is saved is what loading builds, so loading
    # warns of no skipped optimizer variables (Adam's, never built here, would be).
    model.compile(optimizer=keras.optimizers.SGD(), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    finetuned = np.zeros((len(y_test), len(classes)), dtype=np.float32)
    engine = engines.choose(p.engine, len(y_test))
    engines.predict_batches(engines.runner(model, engine), x_test, p.batch_size, finetuned,
                            desc="test")
    head = keras.models.load_model(HEAD).predict(
        np.load(FEATURES / "test_x.npy").astype(np.float32), batch_size=1024, verbose=0)
    for path in EXPORTS:
        save_model(model, path)
    write_predictions(PREDICTIONS, classes, y_test, finetuned, head)
    metrics = {"head": scores(head, y_test, classes, p.top_k),
               "finetuned": {**scores(finetuned, y_test, classes, p.top_k), "engine": engine}}
    write_json(EVALUATION, metrics)
    print(f"evaluate: test accuracy head-only {metrics['head']['accuracy']:.4f}, "
          f"fine-tuned {metrics['finetuned']['accuracy']:.4f} on {len(y_test)} images")


if __name__ == "__main__":
    run_stage(main, STAGE_TIMES / "evaluate.json")
