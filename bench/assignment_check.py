"""The original assignment's check on a finished run's export, from the project root:

    python -m bench.assignment_check

`preprocess_data` on the 10,000 CIFAR-10 test images (those `fetch` prepared, or with
`--keras-datasets` those `keras.datasets.cifar10` downloads), `keras.models.load_model` of
`models/cifar10.h5`, `evaluate`; prints its accuracy beside the fine-tuned test accuracy in
`metrics/evaluate.json` and exits 1 if they differ or the accuracy is below 87%.
"""

from __future__ import annotations

import json
import sys

import keras
import numpy as np

from bench.common import script_parser
from transfer import preprocess_data

TARGET = 0.87


def main() -> None:
    """Evaluate models/cifar10.h5 on the preprocessed test set and compare with the paper's."""
    parser = script_parser(__doc__)
    parser.add_argument("--keras-datasets", action="store_true",
                        help="test images from keras.datasets.cifar10 (needs the network)")
    args = parser.parse_args()
    if args.keras_datasets:
        _, (x, y) = keras.datasets.cifar10.load_data()
    else:
        x, y = np.load("data/prepared/test_x.npy"), np.load("data/prepared/test_y.npy")
    x_p, y_p = preprocess_data(x, y)
    model = keras.models.load_model("models/cifar10.h5")
    accuracy = model.evaluate(x_p, y_p, batch_size=128, verbose=0, return_dict=True)["accuracy"]
    paper = json.load(open("metrics/evaluate.json"))["finetuned"]["accuracy"]
    print(f"cifar10.h5 on {len(x_p):,} test images: accuracy {accuracy:.4f}; "
          f"metrics/evaluate.json: {paper:.4f}; target {TARGET:.2f}")
    sys.exit(0 if abs(accuracy - paper) < 1e-4 and accuracy >= TARGET else 1)


if __name__ == "__main__":
    main()
