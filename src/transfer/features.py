"""Stage `features`: run the frozen base once over every split and cache its pooled output.

The base runs in `features.precision` (a Keras dtype policy), on the inference engine
`features.engine` (`transfer.engines`: Keras, with XLA if `features.jit_compile`, or OpenVINO).
Writes `features/{train,val,test}_{x,y}.npy` (float16 features, int
labels), the float32 extractor itself as `models/extractor.keras` (later stages never rebuild
the base), and the throughput with the engine and device it was measured on to
`metrics/features.json`.

Several machines or GPUs can share the work (README, "Scaling up"):

    python -m transfer.features --shard I/N   # each of I = 0..N-1, anywhere: shards/features/I-of-N
    python -m transfer.features --merge N     # checks and joins them into the outputs above
    dvc commit features                       # records them; `dvc repro` goes on from `train`

A shard is a contiguous block of whole batches of every split: each batch is one that a single
process runs too (on a GPU the kernels chosen can depend on the batch), so the merged features
equal its output.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from transfer import engines
from transfer.backbones import build_extractor, in_precision, predict_batches
from transfer.data import SPLITS, load_split
from transfer.fetch import OUT as PREPARED
from transfer.params import Params, load_params
from transfer.runtime import (
    UserError,
    atomic_path,
    device_description,
    read_json,
    run_stage,
    save_model,
    seed_everything,
    write_json,
)

OUT = Path("features")
EXTRACTOR = Path("models/extractor.keras")
METRICS = Path("metrics/features.json")
SHARDS = Path("shards/features")  # git-ignored
RECORD = "shard.json"


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


def provenance(params: Params) -> dict:
    """What a shard's features depend on besides the extractor: the data and the params."""
    return {"data": fingerprint(*(a for split in SPLITS for a in load_split(PREPARED, split))),
            "params": {"seed": params.seed, "model": dataclasses.asdict(params.model),
                       "features": dataclasses.asdict(params.features)}}


def extract(params: Params, shard: int, shards: int, out: Path) -> dict:
    """Write this shard's features of every split and the extractor into `out`; return a record
    of what was done (rows per split, seconds, images, engine, device, extractor fingerprint).

    `seconds` is the time of the batches; `prepare_seconds` that of readying the engine: its
    one-time costs (OpenVINO's conversion; the first batch, which traces or allocates), run on
    the first batch of the training split before the timed passes."""
    m = params.model
    seed_everything(params.seed)
    image_size = load_split(PREPARED, "train")[0].shape[1]
    extractor = build_extractor(m.backbone, m.weights, m.input_size, image_size, m.cut_layer)
    model = in_precision(extractor, params.features.precision)
    model.jit_compile = params.features.jit_compile
    dim, batch_size = extractor.output.shape[-1], params.features.batch_size
    sizes = {split: len(load_split(PREPARED, split)[1]) for split in SPLITS}
    parts = {split: shard_rows(n, batch_size, shard, shards) for split, n in sizes.items()}
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
        predict_batches(run, x[part], batch_size, feats, desc=split)
        seconds += time.perf_counter() - start
        feats.flush()
        del feats
        rows[split] = [part.start, part.stop]
    save_model(extractor, out / EXTRACTOR.name)
    return {"shard": shard, "shards": shards, "rows": rows, "feature_dim": int(dim),
            "seconds": seconds, "images": sum(stop - first for first, stop in rows.values()),
            "engine": engine, "prepare_seconds": prepare_seconds, "device": device_description(),
            "extractor": fingerprint(*extractor.get_weights())}


def shard_records(params: Params, shards: int) -> list[tuple[Path, dict]]:
    """The `shards` shard directories with their records, checked to fit together and to fit
    this workspace's data and params (else a one-line UserError naming the shard)."""
    expected = provenance(params)
    found = []
    for i in range(shards):
        directory = SHARDS / f"{i}-of-{shards}"
        if not (directory / RECORD).exists():
            others = sorted(p.name for p in SHARDS.glob("*-of-*")) if SHARDS.exists() else []
            raise UserError(f"{directory} is missing: run `python -m transfer.features --shard "
                            f"{i}/{shards}` (or copy it here); found: {others or 'none'}")
        record = read_json(directory / RECORD)
        for key in ("data", "params"):
            if record[key] != expected[key]:
                raise UserError(f"{directory} was extracted from other {key} than this "
                                f"workspace's (data/prepared, params.yaml): extract it again")
        if found and record["extractor"] != found[0][1]["extractor"]:
            raise UserError(f"{directory} was extracted with other extractor weights than "
                            f"{found[0][0]}: extract every shard with the same weights")
        found.append((directory, record))
    return found


def merge(params: Params, shards: int) -> list[dict]:
    """Join the checked shards, in order, into `features/`, with the extractor; their records."""
    found = shard_records(params, shards)
    dim = found[0][1]["feature_dim"]
    with atomic_path(OUT) as tmp:
        tmp.mkdir()
        for split in SPLITS:
            labels = load_split(PREPARED, split)[1]
            feats = np.lib.format.open_memmap(tmp / f"{split}_x.npy", mode="w+",
                                              dtype=np.float16, shape=(len(labels), dim))
            for directory, record in found:
                first, stop = record["rows"][split]
                feats[first:stop] = np.load(directory / f"{split}_x.npy", mmap_mode="r")
            feats.flush()
            del feats
            np.save(tmp / f"{split}_y.npy", labels)
        with atomic_path(EXTRACTOR) as extractor:
            shutil.copyfile(found[0][0] / EXTRACTOR.name, extractor)
    return [record for _, record in found]


def write_metrics(records: list[dict]) -> None:
    """Write `metrics/features.json` from the shards' records and print a summary.

    `seconds` and `prepare_seconds` add up the shards' times; `images_per_second` is per device.
    """
    images, seconds = sum(r["images"] for r in records), sum(r["seconds"] for r in records)
    prepare = sum(r["prepare_seconds"] for r in records)
    devices, used = sorted({r["device"] for r in records}), sorted({r["engine"] for r in records})
    dim = records[0]["feature_dim"]
    write_json(METRICS, {"images": images, "feature_dim": dim, "device": "; ".join(devices),
                         "engine": ", ".join(used), "shards": len(records),
                         "seconds": round(seconds, 3), "prepare_seconds": round(prepare, 3),
                         "images_per_second": round(images / seconds, 1)})
    print(f"features: {images} images -> {dim}-d features in {seconds:.1f}s "
          f"({images / seconds:.1f} img/s, {', '.join(used)}, {prepare:.1f}s to prepare)"
          + (f", {len(records)} shards" if len(records) > 1 else ""))


def shard_arg(text: str) -> tuple[int, int]:
    """Parse `I/N` with 0 <= I < N."""
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not int(match[1]) < int(match[2]):
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N with 0 <= I < N, e.g. 0/2")
    return int(match[1]), int(match[2])


def main(argv: Sequence[str] = ()) -> None:
    """Extract every split (or one shard of it), or merge the shards; see the module doc.

    `dvc repro` passes no arguments (nor do tests that call stages in-process)."""
    parser = argparse.ArgumentParser(prog="python -m transfer.features", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    job = parser.add_mutually_exclusive_group()
    job.add_argument("--shard", type=shard_arg, metavar="I/N",
                     help="extract only shard I of N into shards/features/I-of-N")
    job.add_argument("--merge", type=int, metavar="N",
                     help="join shards 0..N-1 into features/ and models/extractor.keras")
    args = parser.parse_args(argv)
    if args.merge is not None and args.merge < 1:
        parser.error(f"argument --merge: {args.merge} is not a number of shards >= 1")
    params = load_params()
    if args.merge:
        write_metrics(merge(params, args.merge))
        print("features: merged; `dvc commit features` records the outputs in dvc.lock")
    elif args.shard:
        shard, shards = args.shard
        with atomic_path(SHARDS / f"{shard}-of-{shards}") as tmp:
            record = extract(params, shard, shards, tmp)
            write_json(tmp / RECORD, {**record, **provenance(params)})
        print(f"features: shard {shard}/{shards}, {record['images']} images in "
              f"{record['seconds']:.1f}s; then `python -m transfer.features --merge {shards}`")
    else:
        with atomic_path(OUT) as tmp:
            record = extract(params, 0, 1, tmp)
            for split in SPLITS:
                np.save(tmp / f"{split}_y.npy", load_split(PREPARED, split)[1])
            with atomic_path(EXTRACTOR) as extractor:
                os.replace(tmp / EXTRACTOR.name, extractor)
        write_metrics([record])


if __name__ == "__main__":
    run_stage(lambda: main(sys.argv[1:]))
