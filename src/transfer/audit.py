"""Stage `audit`: find the test images that have a near-copy among the training, validation or
other test images, from the cached features and the prepared images (no pass of the model).

For each test image, `transfer.data.near_copies` finds its closest image in train and
validation together, and its closest other test image, and judges each pair: an exact copy,
a near copy (aligned pixels correlate by `audit.min_correlation` and the frozen base's
features by `audit.min_cosine`), or none. Writes `eval/near_copies.csv` (two rows per test
image: its closest train or val image, its closest other test image) and the counts to
`metrics/audit.json`.
"""

from __future__ import annotations

import csv

import numpy as np

from transfer.data import near_copies
from transfer.data.arrays import SPLITS, load_split
from transfer.params.audit import AuditStageParams
from transfer.params.fields import load_params
from transfer.runtime.files import atomic_path, write_json
from transfer.runtime.paths import AUDIT, FEATURES, NEAR_COPIES, PREPARED, STAGE_TIMES
from transfer.runtime.stage import run_stage

HEADER = ["test_index", "split", "neighbour_index", "kind", "pixel_correlation",
          "feature_cosine", "shift_y", "shift_x"]


def kinds(found: dict, min_correlation: float, min_cosine: float) -> np.ndarray:
    """'exact', 'near' or 'none' for each pair `near_copies.closest` found."""
    near = (found["correlation"] >= min_correlation) & (found["cosine"] >= min_cosine)
    return np.where(found["exact"], "exact", np.where(near, "near", "none"))


def rows(found: dict, kind: np.ndarray, split_of: list[tuple[str, int]]) -> list[list]:
    """The CSV rows of one search; `split_of[j]` is the split and index of pool image j."""
    return [[i, *split_of[j], kind[i], f"{found['correlation'][i]:.4f}",
             f"{found['cosine'][i]:.4f}", *found["shift"][i]]
            for i, j in enumerate(found["index"]) if j >= 0]  # -1: no candidate at all


def main() -> None:
    """Search, judge, and write the pairs and their counts."""
    p = load_params(AuditStageParams).audit
    thumbs = {s: near_copies.thumbnails(load_split(PREPARED, s)[0]) for s in SPLITS}
    features = {s: np.load(FEATURES / f"{s}_x.npy", mmap_mode="r") for s in SPLITS}
    split_of = [(s, i) for s in ("train", "val") for i in range(len(thumbs[s]))]
    searches = {
        "train or val": (near_copies.closest(
            thumbs["test"], features["test"], np.concatenate([thumbs["train"], thumbs["val"]]),
            np.concatenate([features["train"], features["val"]]), p.candidates, p.max_shift),
            split_of),
        "test": (near_copies.closest(thumbs["test"], features["test"], thumbs["test"],
                                     features["test"], p.candidates, p.max_shift, same=True),
                 [("test", i) for i in range(len(thumbs["test"]))])}
    table = []
    for found, pool in searches.values():
        table += rows(found, kinds(found, p.min_correlation, p.min_cosine), pool)
    pairs = {(row[1], row[3], *(sorted(row[0:3:2]) if row[1] == "test" else row[0:3:2]))
             for row in table if row[3] != "none"}  # a pair of test images once
    counts = {s: {k: sum(pair[:2] == (s, k) for pair in pairs) for k in ("exact", "near")}
              for s in SPLITS}
    copied = {row[0] for row in table if row[3] != "none" and row[1] != "test"}
    with atomic_path(NEAR_COPIES) as tmp, tmp.open("w", newline="") as f:
        csv.writer(f).writerows([HEADER, *table])
    write_json(AUDIT, {"test_images": len(thumbs["test"]), "with_copy": len(copied),
                       "pairs": counts, "thumbnail_side": int(thumbs["test"].shape[1])})
    print(f"audit: {len(copied)} of {len(thumbs['test'])} test images have a copy in train or "
          f"val; pairs {counts}")


if __name__ == "__main__":
    run_stage(main, STAGE_TIMES / "audit.json")
