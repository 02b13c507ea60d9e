"""Stage `features`: run the frozen base once over every split and cache its pooled output.

The base runs in `features.precision` (a Keras dtype policy), on the inference engine
`features.engine` (`transfer.models.engines`: Keras, with XLA if `features.jit_compile`, or
OpenVINO). Writes `features/{train,val,test}_{x,y}.npy` (float16 features, int labels), the
float32 extractor itself as `models/extractor.keras` (later stages never rebuild the base), and
the throughput with the engine and device it was measured on to `metrics/features.json`.
`python -m transfer.feature_shards` shares this work between processes or machines.
"""

from __future__ import annotations

import os

import numpy as np

from transfer.data.arrays import SPLITS, load_split
from transfer.models.extraction import extract, write_metrics
from transfer.params.fields import load_params
from transfer.params.model import FeaturesStageParams
from transfer.runtime.files import atomic_path
from transfer.runtime.paths import EXTRACTOR, FEATURES, PREPARED, STAGE_TIMES
from transfer.runtime.stage import run_stage


def main() -> None:
    """Extract the features of every split; save them with their labels and the extractor."""
    params = load_params(FeaturesStageParams)
    with atomic_path(FEATURES) as tmp:
        record = extract(params, 0, 1, tmp)
        for split in SPLITS:
            np.save(tmp / f"{split}_y.npy", load_split(PREPARED, split)[1])
        with atomic_path(EXTRACTOR) as extractor:
            os.replace(tmp / EXTRACTOR.name, extractor)
    write_metrics([record])


if __name__ == "__main__":
    run_stage(main, STAGE_TIMES / "features.json")
