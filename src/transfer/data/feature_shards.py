"""Feature extraction in shards: several processes or machines share the `features` stage.

    python -m transfer.features --shard I/N   # each of I = 0..N-1, anywhere: shards/features/I-of-N
    python -m transfer.features --merge N     # checks and joins them into the stage's outputs
    dvc commit features                       # records them; `dvc repro` goes on from `train`

A shard is a contiguous block of whole batches of every split: each batch is one that a single
process runs too (on a GPU the kernels chosen can depend on the batch), so the merged features
equal its output. Each shard records what it was extracted from (the data's and the params'
fingerprints, the extractor's weights), and merging refuses shards that do not fit together.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
from pathlib import Path

import numpy as np

from transfer.data.arrays import SPLITS, load_split
from transfer.params.model import FeaturesStageParams
from transfer.runtime.errors import UserError
from transfer.runtime.files import atomic_path, read_json
from transfer.runtime.paths import EXTRACTOR, FEATURES, PREPARED, SHARDS

RECORD = "shard.json"


def shard_rows(n_rows: int, batch_size: int, shard: int, shards: int) -> slice:
    """The rows of shard `shard` of `shards`: a contiguous block of whole batches."""
    n_batches = -(-n_rows // batch_size)
    first, end = (n_batches * k // shards * batch_size for k in (shard, shard + 1))
    return slice(first, min(end, n_rows))


def shard_arg(text: str) -> tuple[int, int]:
    """Parse `I/N` with 0 <= I < N."""
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not int(match[1]) < int(match[2]):
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N with 0 <= I < N, e.g. 0/2")
    return int(match[1]), int(match[2])


def fingerprint(*arrays: np.ndarray) -> str:
    """A short hash of the arrays' bytes (memory-mapped ones are read page by page)."""
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        digest.update(np.ascontiguousarray(array))
    return digest.hexdigest()


def provenance(params: FeaturesStageParams) -> dict:
    """What a shard's features depend on besides the extractor: the data and the params."""
    return {"data": fingerprint(*(a for split in SPLITS for a in load_split(PREPARED, split))),
            "params": {"seed": params.seed, "model": params.model.model_dump(),
                       "features": params.features.model_dump()}}


def shard_records(params: FeaturesStageParams, shards: int) -> list[tuple[Path, dict]]:
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


def merge(params: FeaturesStageParams, shards: int) -> list[dict]:
    """Join the checked shards, in order, into `features/`, with the extractor; their records."""
    found = shard_records(params, shards)
    dim = found[0][1]["feature_dim"]
    with atomic_path(FEATURES) as tmp:
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
