"""Stage `features`: run the frozen base once over every split and cache its pooled output.

The base runs in `features.precision` (a Keras dtype policy), on the inference engine
`features.engine` (`transfer.models.engines`: Keras, with XLA if `features.jit_compile`, or
OpenVINO).
Writes `features/{train,val,test}_{x,y}.npy` (float16 features, int labels), the float32
extractor itself as `models/extractor.keras` (later stages never rebuild the base), and the
throughput with the engine and device it was measured on to `metrics/features.json`.

`--shard I/N` and `--merge N` share the work between processes or machines
(`transfer.data.feature_shards`; docs/speed.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from transfer.data import feature_shards
from transfer.data.arrays import SPLITS, load_split
from transfer.models import engines
from transfer.models.backbones import build_extractor
from transfer.models.precision import in_precision
from transfer.models.saving import save_model
from transfer.params.fields import load_params
from transfer.params.model import FeaturesStageParams
from transfer.runtime.files import atomic_path, read_json, write_json
from transfer.runtime.paths import (
    DATASET,
    EXTRACTOR,
    FEATURES,
    FEATURES_METRICS,
    PREPARED,
    SHARDS,
    STAGE_TIMES,
)
from transfer.runtime.stage import run_stage, seed_everything
from transfer.training.devices import device_description


def extract(params: FeaturesStageParams, shard: int, shards: int, out: Path) -> dict:
    """Write this shard's features of every split and the extractor into `out`; return a record
    of what was done (rows per split, seconds, images, engine, device, extractor fingerprint).

    `seconds` is the time of the batches; `prepare_seconds` that of readying the engine: its
    one-time costs (OpenVINO's conversion; the first batch, which traces or allocates), run on
    the first batch of the training split before the timed passes."""
    m = params.model
    seed_everything(params.seed)
    image_size = load_split(PREPARED, "train")[0].shape[1]
    input_size = read_json(DATASET)["input_size"]  # model.input_size, resolved by fetch
    extractor = build_extractor(m.backbone, m.weights, input_size, image_size, m.cut_layer)
    model = in_precision(extractor, params.features.precision)
    model.jit_compile = params.features.jit_compile
    dim, batch_size = extractor.output.shape[-1], params.features.batch_size
    sizes = {split: len(load_split(PREPARED, split)[1]) for split in SPLITS}
    parts = {split: feature_shards.shard_rows(n, batch_size, shard, shards)
             for split, n in sizes.items()}
    engine = engines.choose(params.features.engine, sum(sizes.values()),  # same in each shard
                            params.features.precision)
    start = time.perf_counter()
    run = engines.runner(model, engine)
    run(np.asarray(load_split(PREPARED, "train")[0][:batch_size], np.float32))
    prepare_seconds = time.perf_counter() - start
    out.mkdir()
    rows, seconds = {}, 0.0
    for split, part in parts.items():
        x = load_split(PREPARED, split)[0]
        feats = np.lib.format.open_memmap(out / f"{split}_x.npy", mode="w+", dtype=np.float16,
                                          shape=(part.stop - part.start, dim))
        start = time.perf_counter()
        engines.predict_batches(run, x[part], batch_size, feats, desc=split)
        seconds += time.perf_counter() - start
        feats.flush()
        del feats
        rows[split] = [part.start, part.stop]
    save_model(extractor, out / EXTRACTOR.name)
    return {"shard": shard, "shards": shards, "rows": rows, "feature_dim": int(dim),
            "seconds": seconds, "images": sum(stop - first for first, stop in rows.values()),
            "engine": engine, "prepare_seconds": prepare_seconds, "device": device_description(),
            "extractor": feature_shards.fingerprint(*extractor.get_weights())}


def write_metrics(records: list[dict]) -> None:
    """Write `metrics/features.json` from the shards' records and print a summary.

    `seconds` and `prepare_seconds` add up the shards' times; `images_per_second` is per device.
    """
    images, seconds = sum(r["images"] for r in records), sum(r["seconds"] for r in records)
    prepare = sum(r["prepare_seconds"] for r in records)
    devices, used = sorted({r["device"] for r in records}), sorted({r["engine"] for r in records})
    dim = records[0]["feature_dim"]
    write_json(FEATURES_METRICS, {
        "images": images, "feature_dim": dim, "device": "; ".join(devices),
        "engine": ", ".join(used), "shards": len(records), "seconds": round(seconds, 3),
        "tolerance": engines.TOLERANCE,  # OpenVINO's outputs against Keras's, for the paper
        "prepare_seconds": round(prepare, 3), "images_per_second": round(images / seconds, 1)})
    print(f"features: {images} images -> {dim}-d features in {seconds:.1f}s "
          f"({images / seconds:.1f} img/s, {', '.join(used)}, {prepare:.1f}s to prepare)"
          + (f", {len(records)} shards" if len(records) > 1 else ""))


def main(argv: Sequence[str] = ()) -> None:
    """Extract every split (or one shard of it), or merge the shards; see the module doc.

    `dvc repro` passes no arguments (nor do tests that call stages in-process)."""
    parser = argparse.ArgumentParser(prog="python -m transfer.features", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    job = parser.add_mutually_exclusive_group()
    job.add_argument("--shard", type=feature_shards.shard_arg, metavar="I/N",
                     help="extract only shard I of N into shards/features/I-of-N")
    job.add_argument("--merge", type=int, metavar="N",
                     help="join shards 0..N-1 into features/ and models/extractor.keras")
    args = parser.parse_args(argv)
    if args.merge is not None and args.merge < 1:
        parser.error(f"argument --merge: {args.merge} is not a number of shards >= 1")
    params = load_params(FeaturesStageParams)
    if args.merge:
        write_metrics(feature_shards.merge(params, args.merge))
        print("features: merged; `dvc commit features` records the outputs in dvc.lock")
    elif args.shard:
        shard, shards = args.shard
        with atomic_path(SHARDS / f"{shard}-of-{shards}") as tmp:
            record = extract(params, shard, shards, tmp)
            write_json(tmp / feature_shards.RECORD,
                       {**record, **feature_shards.provenance(params)})
        print(f"features: shard {shard}/{shards}, {record['images']} images in "
              f"{record['seconds']:.1f}s; then `python -m transfer.features --merge {shards}`")
    else:
        with atomic_path(FEATURES) as tmp:
            record = extract(params, 0, 1, tmp)
            for split in SPLITS:
                np.save(tmp / f"{split}_y.npy", load_split(PREPARED, split)[1])
            with atomic_path(EXTRACTOR) as extractor:
                os.replace(tmp / EXTRACTOR.name, extractor)
        write_metrics([record])


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]),
              None if "--shard" in " ".join(sys.argv) else STAGE_TIMES / "features.json")
