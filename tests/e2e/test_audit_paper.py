"""The paper's checks on a real backbone: planted copies in a test set are all reported and
nothing else is; the exported calibrated model predicts what the uncalibrated one did; every
figure's alternative text carries its numbers."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import skimage
from conftest import ROOT, moved, run_stages, tiny_params, write_params
from PIL import Image

from transfer.models.calibration import tempered
from transfer.runtime.files import read_json

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
          "retina.jpg")
SIDE = 32


def tiles() -> list[np.ndarray]:
    """Non-overlapping 64 px tiles of scikit-image's photos, shrunk to 32 px."""
    found = []
    for name in PHOTOS:
        photo = np.asarray(Image.open(Path(skimage.__file__).parent / "data" / name)
                           .convert("RGB"))
        for y in range(0, photo.shape[0] - 63, 64):
            for x in range(0, photo.shape[1] - 63, 64):
                tile = Image.fromarray(photo[y:y + 64, x:x + 64]).resize((SIDE, SIDE))
                found.append(np.asarray(tile))
    return found


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, dict]:
    """Three classes of photo tiles, 12 train and 4 test each, then three planted test images:
    an exact copy of a training image, a training image moved by (3, -2) px and brightened by
    30, and an exact copy of another test image."""
    root = tmp_path_factory.mktemp("planted")
    pool = tiles()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pool))
    images = iter(pool[i] for i in order)
    for split, n in (("train", 12), ("test", 4)):
        for name in ("ant", "bee", "cow"):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(next(images)).save(root / split / name / f"{i:02d}.png")

    def plant(source: Path, target: Path, image: np.ndarray | None = None) -> np.ndarray:
        """Write `image` (else `source` as it is) as the test image `target`."""
        pixels = np.asarray(Image.open(source)) if image is None else image
        Image.fromarray(pixels).save(target)
        return pixels
    # The moved copy is of the most textured bee: a near-flat image cannot be told from
    # other flat ones by its pixels (the audit's variance floor), only an exact copy can.
    source = max(sorted((root / "train/bee").iterdir()), key=lambda p: np.asarray(
        Image.open(p), dtype=float).std(axis=(0, 1)).mean())
    exact = plant(root / "train/ant/03.png", root / "test/ant/zz-exact.png")
    near = plant(source, root / "test/bee/zz-moved.png",
                 moved(np.asarray(Image.open(source)), 3, -2, 30))
    twin = plant(root / "test/cow/01.png", root / "test/cow/zz-twin.png")
    return root, {"exact": exact, "near": near, "twin": twin,
                  "source": np.asarray(Image.open(source))}


def test_planted_copies_reach_the_paper_and_calibration_keeps_the_argmax(workdir, planted):
    """With real Lite0 weights: the audit reports the exact copy, the moved and brightened one
    and the twin within the test set, each with the right neighbour, and no other pair; the
    paper counts them and gives accuracy without them; the exported model (tempered) predicts
    every class the uncalibrated one did, with the calibrated confidence; the figures' alt
    texts carry numbers."""
    folder, images = planted
    write_params(workdir, **tiny_params(
        folder, data={"image_size": SIDE, "val_split": 0.25},
        model={"backbone": "EfficientNetLite0", "input_size": 64, "weights": "imagenet"},
        finetune={"layers": 0}, evaluate={"maps": 2}))
    shutil.copytree(ROOT / "report/templates", workdir / "report/templates")
    run_stages("fetch", "features", "audit", "train", "finetune", "evaluate", "report")
    x = {s: np.load(f"data/prepared/{s}_x.npy") for s in ("train", "val", "test")}
    with open("eval/near_copies.csv") as f:
        found = [r for r in csv.DictReader(f) if r["kind"] != "none"]
    by_image = {}
    for r in found:
        test = x["test"][int(r["test_index"])]
        neighbour = x[r["split"]][int(r["neighbour_index"])]
        by_image.setdefault(r["kind"], []).append((test, neighbour, r))
    exact_pairs = [(t, n) for t, n, r in by_image.get("exact", []) if r["split"] != "test"]
    assert len(exact_pairs) == 1 and (exact_pairs[0][0] == images["exact"]).all()
    assert (exact_pairs[0][1] == images["exact"]).all()
    near_pairs = by_image.get("near", [])
    assert len(near_pairs) == 1 and (near_pairs[0][0] == images["near"]).all()
    assert (near_pairs[0][1] == images["source"]).all()
    assert (int(near_pairs[0][2]["shift_y"]), int(near_pairs[0][2]["shift_x"])) == (3, -2)
    twins = [r for t, n, r in by_image.get("exact", []) if r["split"] == "test"]
    assert len(twins) == 2 and all((x["test"][int(r["test_index"])] == images["twin"]).all()
                                   for r in twins)  # each twin names the other
    audit = read_json("metrics/audit.json")
    assert audit["with_copy"] == 2 and audit["pairs"]["test"] == {"exact": 1, "near": 0}
    paper = Path("report/paper.md").read_text()
    assert f"2 of the {len(x['test'])} test images" in paper
    assert "the test set holds 1 pair of copies within itself" in paper
    assert f"on {len(x['test']) - 2} images, against" in paper

    model = keras.models.load_model("models/model.keras")
    probs = model.predict(x["test"].astype(np.float32), verbose=0)
    with open("eval/predictions.csv") as f:
        rows = list(csv.DictReader(f))
    classes = read_json("data/prepared/classes.json")
    assert [classes[i] for i in probs.argmax(axis=1)] == [r["predicted"] for r in rows]
    np.testing.assert_allclose(probs.max(axis=1), [float(r["calibrated_confidence"])
                                                   for r in rows], atol=1e-4)
    temperature = read_json("metrics/evaluate.json")["finetuned"]["calibration"]["temperature"]
    assert temperature != pytest.approx(1.0, abs=1e-3)  # the export did change probabilities
    uncalibrated = np.array([float(r["confidence"]) for r in rows])
    assert not np.allclose(probs.max(axis=1), uncalibrated, atol=1e-4)
    assert tempered(np.array([[0.5, 0.5]]), temperature)[0, 0] == pytest.approx(0.5)

    for page, least in (("report/site/index.html", 6), ("report/paper.html", 8)):
        alts = re.findall(r'<img [^>]*alt="([^"]*)"', Path(page).read_text())
        assert len(alts) >= least and all(re.search(r"\d", alt) for alt in alts), alts
    table = paper.split("*Table 1.")[1].split("###")[0]
    assert "auto" not in table.split("\n\n", 1)[1] and "input_size 64" in table
