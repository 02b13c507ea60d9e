"""The frozen base run over the prepared splits (or a shard of them), its features written in
float16 with a record of the pass: what `features` does, and each shard of it."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from transfer.data.arrays import SPLITS, array_file, load_split
from transfer.models import engines
from transfer.models.backbones import build_extractor
from transfer.models.precision import in_precision
from transfer.models.saving import save_model
from transfer.params.model import FeaturesStageParams
from transfer.params.resolved import read_resolved, with_resolved
from transfer.runtime.devices import device_description
from transfer.runtime.files import write_json
from transfer.runtime.paths import EXTRACTOR, FEATURES_METRICS, PREPARED
from transfer.runtime.stage import seed_everything


def shard_rows(n_rows: int, batch_size: int, shard: int, shards: int) -> slice:
    """The rows of shard `shard` of `shards`: a contiguous block of whole batches."""
    n_batches = -(-n_rows // batch_size)
    first, end = (n_batches * k // shards * batch_size for k in (shard, shard + 1))
    return slice(first, min(end, n_rows))


def fingerprint(*arrays: np.ndarray) -> str:
    """A short hash of the arrays' bytes (memory-mapped ones are read page by page)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        digest.update(np.ascontiguousarray(array))
    return digest.hexdigest()


def extract(params: FeaturesStageParams, shard: int, shards: int, out: Path) -> dict:
    """Write this shard's features of every split and the extractor into `out`; return a record
    of what was done (rows per split, seconds, images, engine, device, extractor fingerprint).

    `seconds` is the time of the batches; `prepare_seconds` that of readying the engine: its
    one-time costs (OpenVINO's conversion; the first batch, which traces or allocates), run on
    the first batch of the training split before the timed passes."""
    m, p = with_resolved(params, [read_resolved("fetch")]).model, params.features  # input size
    seed_everything(params.seed)
    images = {split: load_split(PREPARED, split)[0] for split in SPLITS}  # memory-mapped
    extractor = build_extractor(m.backbone, m.weights, m.input_size, images["train"].shape[1],
                                m.cut_layer)
    model = in_precision(extractor, p.precision)
    model.jit_compile = p.jit_compile
    dim = extractor.output.shape[-1]
    parts = {split: shard_rows(len(x), p.batch_size, shard, shards) for split, x in images.items()}
    engine = engines.choose(p.engine, sum(map(len, images.values())),  # the same in each shard
                            p.precision)
    start = time.perf_counter()
    run = engines.runner(model, engine)
    run(np.asarray(images["train"][:p.batch_size], np.float32))
    prepare_seconds = time.perf_counter() - start
    out.mkdir()
    rows, seconds = {}, 0.0
    for split, part in parts.items():
        with array_file(out / f"{split}_x.npy", (part.stop - part.start, dim),
                        np.float16) as feats:
            start = time.perf_counter()
            engines.predict_batches(run, images[split][part], p.batch_size, feats, desc=split)
            seconds += time.perf_counter() - start
        rows[split] = [part.start, part.stop]
    save_model(extractor, out / EXTRACTOR.name)
    return {"shard": shard, "shards": shards, "rows": rows, "feature_dim": int(dim),
            "seconds": seconds, "images": sum(stop - first for first, stop in rows.values()),
            "engine": engine, "prepare_seconds": prepare_seconds, "device": device_description(),
            "extractor": fingerprint(*extractor.get_weights())}


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
