"""Real transfer learning, end to end: ImageNet weights beat random ones on real images.

scikit-learn's handwritten digits (1,797 real 8x8 scans, 10 classes) are written as an image
folder and run through every stage with EfficientNetLite0, once with its ImageNet weights and
once with random weights, everything else equal.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import run_stages, write_params
from PIL import Image
from sklearn.datasets import load_digits

from transfer import preprocess_data
from transfer.data.arrays import load_split
from transfer.runtime.files import read_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory: pytest.TempPathFactory):
    """train/<digit>/ and test/<digit>/ PNGs: every fifth scan is a test image."""
    root = tmp_path_factory.mktemp("digits")
    digits = load_digits()
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = root / ("test" if i % 5 == 0 else "train") / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255 / 16).astype(np.uint8)).save(folder / f"{i:04d}.png")
    return root


def run(workdir, folder, weights: str) -> dict:
    """fetch to evaluate in `workdir` with EfficientNetLite0 at 64 px; the test metrics."""
    workdir.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        write_params(workdir,
                     data={"source": "folder", "path": str(folder), "image_size": 32,
                           "val_split": 0.2},
                     model={"backbone": "EfficientNetLite0", "input_size": 64,
                            "weights": weights},
                     train={"batch_size": 256},  # as measured below (not the recipe's auto)
                     finetune={"layers": "all", "epochs": 2, "batch_size": 32,
                               "learning_rate": 3e-4})
        run_stages("fetch", "features", "train", "finetune", "evaluate")
        metrics = read_json("metrics/evaluate.json")
        # The assignment's check on the export: load_model, preprocess_data, evaluate.
        x, y = preprocess_data(*load_split("data/prepared", "test"))
        model = keras.models.load_model("models/cifar10.h5")
        metrics["h5_accuracy"] = model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"]
    return metrics


def test_imagenet_weights_transfer_and_fine_tune(tmp_path, digits_folder):
    """Measured on this project's 2-core CPU: ImageNet head 0.931 / fine-tuned 0.961, random
    weights 0.775 / 0.758. Thresholds: ImageNet fine-tuned >= 0.90, at least 10 points
    above random weights for the head and for the fine-tuned model, and the exported .h5
    scores what `evaluate` wrote."""
    real = run(tmp_path / "imagenet", digits_folder, "imagenet")
    random = run(tmp_path / "none", digits_folder, "none")
    print(f"digits test accuracy, ImageNet head {real['head']['accuracy']:.4f} fine-tuned "
          f"{real['finetuned']['accuracy']:.4f}; random head {random['head']['accuracy']:.4f} "
          f"fine-tuned {random['finetuned']['accuracy']:.4f}")
    assert real["finetuned"]["accuracy"] >= 0.90
    for model in ("head", "finetuned"):
        assert real[model]["accuracy"] >= random[model]["accuracy"] + 0.10, model
    for metrics in (real, random):
        assert metrics["h5_accuracy"] == pytest.approx(metrics["finetuned"]["accuracy"],
                                                       abs=1e-6)
