"""Stage `features`: run the frozen base once over every split and cache its pooled output.

The base runs in `features.precision` (a Keras dtype policy), with XLA if
`features.jit_compile`. Writes `features/{train,val,test}_{x,y}.npy` (float16 features, int
labels), the float32 extractor itself as `models/extractor.keras` (later stages never rebuild
the base), and the throughput with the device it was measured on to `metrics/features.json`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from transfer.backbones import build_extractor, in_precision, predict_batches
from transfer.data import SPLITS, load_split
from transfer.fetch import OUT as PREPARED
from transfer.params import load_params
from transfer.runtime import atomic_path, device_description, run_stage, seed_everything, write_json

OUT = Path("features")
EXTRACTOR = Path("models/extractor.keras")
METRICS = Path("metrics/features.json")


def main() -> None:
    """Build the extractor from `model` params and stream every split through it."""
    params = load_params()
    m = params.model
    seed_everything(params.seed)
    image_size = load_split(PREPARED, "train")[0].shape[1]
    extractor = build_extractor(m.backbone, m.weights, m.input_size, image_size, m.cut_layer)
    runner = in_precision(extractor, params.features.precision)
    runner.jit_compile = params.features.jit_compile
    dim = extractor.output.shape[-1]
    seconds, n_images = 0.0, 0
    with atomic_path(OUT) as tmp:
        tmp.mkdir()
        for split in SPLITS:
            x, y = load_split(PREPARED, split)
            feats = np.lib.format.open_memmap(tmp / f"{split}_x.npy", mode="w+",
                                              dtype=np.float16, shape=(len(x), dim))
            start = time.perf_counter()
            predict_batches(runner, x, params.features.batch_size, feats, desc=split)
            seconds += time.perf_counter() - start
            feats.flush()
            del feats
            np.save(tmp / f"{split}_y.npy", y)
            n_images += len(y)
    with atomic_path(EXTRACTOR) as tmp:
        extractor.save(tmp)
    write_json(METRICS, {"images": n_images, "feature_dim": int(dim),
                         "device": device_description(),
                         "seconds": round(seconds, 3),
                         "images_per_second": round(n_images / seconds, 1)})
    print(f"features: {n_images} images -> {dim}-d features in {seconds:.1f}s "
          f"({n_images / seconds:.1f} img/s)")


if __name__ == "__main__":
    run_stage(main)
