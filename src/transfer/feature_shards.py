"""Feature extraction in shards: several processes or machines share the `features` stage.

    python -m transfer.feature_shards --shard I/N  # each I = 0..N-1: shards/features/I-of-N
    python -m transfer.feature_shards --merge N    # checks and joins them: the stage's outputs
    dvc commit features                            # records them; `dvc repro` goes on from train

A shard is a contiguous block of whole batches of every split: each batch is one that a single
process runs too (on a GPU the kernels chosen can depend on the batch), so the merged features
equal its output. Each shard records what it was extracted from (the data's and the params'
fingerprints, the extractor's weights), and merging refuses shards that do not fit together.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from transfer.data.arrays import SPLITS, array_file, load_split
from transfer.models.extraction import extract, fingerprint, write_metrics
from transfer.params.fields import load_params
from transfer.params.model import FeaturesStageParams
from transfer.runtime.errors import UserError
from transfer.runtime.files import atomic_path, read_json, write_json
from transfer.runtime.paths import EXTRACTOR, FEATURES, PREPARED, SHARDS, STAGE_TIMES
from transfer.runtime.stage import run_stage

RECORD = "shard.json"


def shard_arg(text: str) -> tuple[int, int]:
    """Parse `I/N` with 0 <= I < N."""
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not int(match[1]) < int(match[2]):
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N with 0 <= I < N, e.g. 0/2")
    return int(match[1]), int(match[2])


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
            raise UserError(f"{directory} is missing: run `python -m transfer.feature_shards "
                            f"--shard {i}/{shards}` (or copy it here); found: {others or 'none'}")
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
            with array_file(tmp / f"{split}_x.npy", (len(labels), dim), np.float16) as feats:
                for directory, record in found:
                    first, stop = record["rows"][split]
                    feats[first:stop] = np.load(directory / f"{split}_x.npy", mmap_mode="r")
            np.save(tmp / f"{split}_y.npy", labels)
        with atomic_path(EXTRACTOR) as extractor:
            shutil.copyfile(found[0][0] / EXTRACTOR.name, extractor)
    return [record for _, record in found]


def arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The command line: one shard's extraction, or the merge of N shards."""
    parser = argparse.ArgumentParser(prog="python -m transfer.feature_shards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    job = parser.add_mutually_exclusive_group(required=True)
    job.add_argument("--shard", type=shard_arg, metavar="I/N",
                     help="extract only shard I of N into shards/features/I-of-N")
    job.add_argument("--merge", type=int, metavar="N",
                     help="join shards 0..N-1 into features/ and models/extractor.keras")
    args = parser.parse_args(argv)
    if args.merge is not None and args.merge < 1:
        parser.error(f"argument --merge: {args.merge} is not a number of shards >= 1")
    return args


def main(args: argparse.Namespace) -> None:
    """Extract one shard, or merge the shards into the `features` stage's outputs."""
    params = load_params(FeaturesStageParams)
    if args.merge:
        write_metrics(merge(params, args.merge))
        print("features: merged; `dvc commit features` records the outputs in dvc.lock")
        return
    shard, shards = args.shard
    with atomic_path(SHARDS / f"{shard}-of-{shards}") as tmp:
        record = extract(params, shard, shards, tmp)
        write_json(tmp / RECORD, {**record, **provenance(params)})
    print(f"features: shard {shard}/{shards}, {record['images']} images in "
          f"{record['seconds']:.1f}s; then `python -m transfer.feature_shards --merge {shards}`")


if __name__ == "__main__":
    ARGS = arguments(sys.argv[1:])  # a shard's time is in its record; the merge's is the stage's
    run_stage(lambda: main(ARGS), None if ARGS.shard else STAGE_TIMES / "features.json")
