"""Image-folder datasets as people have them: layouts, stored size, crop or squash, EXIF
orientation, errors that name what the user gave, unusual class names, too-small classes."""

from __future__ import annotations

import json
import shutil
import struct
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import make_image_folder, tiny_params, write_params
from PIL import Image

from transfer import fetch, predict
from transfer.data.folders import DataError
from transfer.data.images import decode_image
from transfer.runtime.files import read_json

PREPARED = Path("data/prepared")


def run_fetch(workdir: Path, folder: Path, model: dict | None = None, **data: object) -> dict:
    """Tiny params for `folder` (with overrides), fetch; the prepared split sizes per class."""
    write_params(workdir, **tiny_params(folder, data=data, model=model or {}))
    fetch.main()
    return {split: np.bincount(np.load(PREPARED / f"{split}_y.npy")).tolist()
            for split in ("train", "val", "test")}


def one_folder(root: Path, classes: list[str], n: int, size: int = 16) -> Path:
    """`root/<class>/` with `n` images each and no split folders."""
    made = make_image_folder(root / "staging", classes, n, 1, size=size)
    for name in classes:
        shutil.move(made / "train" / name, root / name)
    shutil.rmtree(made)
    return root


# --- layouts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("held_out", ["test", "val", "valid", "validation"])
def test_train_beside_a_held_out_folder(workdir, tmp_path, capsys, held_out):
    """train/ with test/, val/, valid/ or validation/: that folder is the test set, the
    validation set still comes out of train/; fetch says which folder it used."""
    folder = make_image_folder(tmp_path / "ds", ["cat", "dog"], 8, 3)
    (folder / "test").rename(folder / held_out)
    counts = run_fetch(workdir, folder)
    assert counts == {"train": [6, 6], "val": [2, 2], "test": [3, 3]}
    assert f"train/ + {held_out}/: {held_out}/ is the test set" in capsys.readouterr().out
    assert read_json(PREPARED / "dataset.json")["test_set"] == f"the {held_out}/ folder"


@pytest.mark.parametrize("wrapped", [False, True])
def test_one_folder_of_class_folders_is_split_by_test_split(workdir, tmp_path, capsys,
                                                            wrapped):
    """Class folders with no split: a stratified, seeded data.test_split becomes the test
    set, also one folder down; no image is in two splits."""
    root = one_folder(tmp_path / "ds" / ("photos" if wrapped else ""), ["cat", "dog", "fox"], 10)
    counts = run_fetch(workdir, tmp_path / "ds", test_split=0.2)
    assert counts == {"train": [6, 6, 6], "val": [2, 2, 2], "test": [2, 2, 2]}
    out = capsys.readouterr().out
    assert "one folder of class folders" in out
    assert (" in photos/ of " if wrapped else "test_split) of ") + str(tmp_path / "ds") in out
    first = {s: np.load(PREPARED / f"{s}_x.npy") for s in ("train", "val", "test")}
    rows = [r.tobytes() for x in first.values() for r in x]
    assert len(set(rows)) == len(rows) == 30
    fetch.main()
    for split, x in first.items():
        np.testing.assert_array_equal(np.load(PREPARED / f"{split}_x.npy"), x)
    assert root.exists()


def test_train_alone_is_split_too(workdir, tmp_path, capsys):
    """train/ with no held-out folder beside it: the test set is split off train/."""
    folder = make_image_folder(tmp_path / "ds", ["cat", "dog"], 10, 1)
    shutil.rmtree(folder / "test")
    counts = run_fetch(workdir, folder, test_split=0.3)
    assert counts == {"train": [5, 5], "val": [2, 2], "test": [3, 3]}
    assert "train/, with no held-out folder" in capsys.readouterr().out


def test_test_and_val_together_need_a_choice(workdir, tmp_path):
    """Both test/ and val/: an error naming both and data.test_folder, unless it chooses."""
    folder = make_image_folder(tmp_path / "ds", ["cat", "dog"], 8, 3)
    shutil.copytree(folder / "test", folder / "val")
    (folder / "val" / "cat" / "000.png").unlink()
    write_params(workdir, **tiny_params(folder))
    with pytest.raises(DataError, match=r"both test/ and val/ could be the test set; "
                                        r"set data.test_folder to one of: test, val"):
        fetch.main()
    assert not Path("data").exists()
    assert run_fetch(workdir, folder, test_folder="val")["test"] == [2, 3]
    assert run_fetch(workdir, folder, test_folder="test")["test"] == [3, 3]


@pytest.mark.parametrize("held_out", ["test", "val"])
def test_a_held_out_split_alone_is_refused_unless_named(workdir, tmp_path, capsys, held_out):
    """Only test/<class>/ (or val/): refused in one line naming it and the way to train on it;
    data.path set to that folder itself reads it as one folder of class folders, and says so."""
    folder = make_image_folder(tmp_path / "ds", ["cat", "dog"], 1, 10)
    shutil.rmtree(folder / "train")
    (folder / "test").rename(folder / held_out)
    write_params(workdir, **tiny_params(folder))
    with pytest.raises(DataError, match=rf"{folder / held_out}: only a held-out split "
                                        rf"\({held_out}/\) is there, no train/; to train on it, "
                                        rf"set data.path to {folder / held_out}$"):
        fetch.main()
    assert not Path("data").exists()
    assert run_fetch(workdir, folder / held_out, test_split=0.2)["test"] == [2, 2]
    assert "one folder of class folders" in capsys.readouterr().out


# --- stored size, crop or squash ----------------------------------------------------------------


def test_stored_size_follows_the_data(workdir, tmp_path):
    """500x375 photos are stored at model.input_size; 32 px images stay at 32 (nothing is
    upscaled before the model); an explicit data.image_size wins."""
    photos = make_image_folder(tmp_path / "photos", ["cat", "dog"], 3, 1)
    for path in photos.rglob("*.png"):
        Image.open(path).resize((500, 375)).save(path)
    small = make_image_folder(tmp_path / "small", ["cat", "dog"], 3, 1, size=32)
    for folder, image_size, expected in ((photos, None, 64), (small, None, 32),
                                         (photos, 40, 40)):
        run_fetch(workdir, folder, model={"input_size": 64}, image_size=image_size)
        assert np.load(PREPARED / "train_x.npy").shape[1:] == (expected, expected, 3)
        assert read_json(PREPARED / "dataset.json")["image_size"] == expected


def bars(path: Path) -> Path:
    """A 90x30 image: red, green and blue thirds from left to right."""
    pixels = np.zeros((30, 90, 3), np.uint8)
    for i in range(3):
        pixels[:, 30 * i:30 * (i + 1), i] = 255
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.parametrize("resize", ["crop", "squash"])
def test_crop_keeps_the_centre_and_squash_keeps_everything(workdir, tmp_path, resize):
    """data.resize: crop stores the centred square (all green), squash the whole image
    (red, green, blue thirds); fetch and decode_image agree."""
    folder = make_image_folder(tmp_path / "ds", ["a", "b"], 2, 1, size=30)
    image = bars(folder / "test" / "a" / "000.png")
    run_fetch(workdir, folder, image_size=30, resize=resize)
    stored = np.load(PREPARED / "test_x.npy")[0]
    np.testing.assert_array_equal(stored, decode_image(image, 30, resize=resize))
    thirds = [stored[:, 10 * i:10 * (i + 1)].mean(axis=(0, 1)).argmax() for i in range(3)]
    assert thirds == ([1, 1, 1] if resize == "crop" else [0, 1, 2])


# --- EXIF orientation -----------------------------------------------------------------------------


def portrait_jpeg(path: Path) -> Path:
    """A 40x20 landscape JPEG, red on top and blue below, tagged 'rotate 90 degrees clockwise
    to display' (EXIF orientation 6): upright it is a 20x40 portrait, blue left, red right."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:10, :, 0] = 255
    pixels[10:, :, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    return path


def upright(pixels: np.ndarray) -> bool:
    """True if the left half is blue and the right half red, as the portrait shows."""
    half = pixels.shape[1] // 2
    return (pixels[:, :half, 2].mean() > 200 and pixels[:, half:, 0].mean() > 200
            and pixels[:, :half, 0].mean() < 60)


def test_exif_rotation_is_applied_in_fetch_and_predict(workdir, tmp_path, monkeypatch):
    """A portrait JPEG with an EXIF rotation is read upright by fetch and by predict."""
    folder = make_image_folder(tmp_path / "ds", ["a", "b"], 2, 1, size=20)
    image = portrait_jpeg(folder / "test" / "a" / "000.jpg")
    assert not upright(np.asarray(Image.open(image)))  # as stored, sideways
    run_fetch(workdir, folder, image_size=20, resize="squash")
    assert upright(np.load(PREPARED / "test_x.npy")[0])
    model = keras.Sequential([keras.Input((20, 20, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    model.save("model.keras")
    shown = []
    monkeypatch.setattr(predict.charts, "predictions",
                        lambda images, *args: shown.extend(images))
    predict.main([str(image), "--model", "model.keras", "--plot", "p.png"])
    assert upright(shown[0])


def test_a_cut_short_exif_tag_decodes_without_a_warning(tmp_path):
    """A JPEG whose EXIF tag claims more bytes than the block holds (as some Food-101 photos
    do) decodes to its pixels, with no PIL warning on the console."""
    entry = struct.pack("<HHII", 0x010F, 2, 1000, 26)  # Make: 1000 ASCII bytes, past the end
    blob = b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + entry + \
        b"\x00" * 4
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (20, 10), (200, 0, 0)).save(path, exif=blob, quality=95)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pixels = decode_image(path, 10)
    assert pixels.shape == (10, 10, 3) and pixels[..., 0].mean() > 180


# --- names and errors -----------------------------------------------------------------------------


def test_archive_errors_name_the_archive(workdir, tmp_path):
    """An archive without a usable layout is named in the error, never the temporary folder
    it was unpacked into."""
    staging = tmp_path / "staging" / "stuff"
    staging.mkdir(parents=True)
    (staging / "readme.txt").write_text("no images here")
    archive = Path(shutil.make_archive(str(tmp_path / "dataset"), "gztar", tmp_path / "staging"))
    write_params(workdir, **tiny_params(archive))
    with pytest.raises(DataError) as err:
        fetch.main()
    message = str(err.value)
    assert message.startswith(f"{archive}: no image folders found")
    assert "transfer-unpack-" not in message


def test_unusual_class_names_are_kept_as_given(workdir, tmp_path):
    """Spaces, accents and digits in class folder names are used as they are."""
    names = ["7 up", "Grüner Tee", "crème brûlée"]
    folder = make_image_folder(tmp_path / "ds", names, 4, 1)
    run_fetch(workdir, folder)
    assert json.loads((PREPARED / "classes.json").read_text(encoding="utf-8")) == sorted(names)


@pytest.mark.parametrize("layout", ["one folder", "train+test"])
def test_a_class_too_small_for_the_split_is_named(workdir, tmp_path, layout):
    """A class with too few images for the test and validation splits is one line naming the
    class folder and its count; nothing is written."""
    if layout == "one folder":
        folder = one_folder(tmp_path / "ds", ["cat", "dog"], 5)
        for extra in sorted((folder / "dog").iterdir())[2:]:
            extra.unlink()
        small, count, need = folder / "dog", 2, 3
    else:
        folder = make_image_folder(tmp_path / "ds", ["cat", "dog"], 5, 2)
        for extra in sorted((folder / "train" / "dog").iterdir())[1:]:
            extra.unlink()
        small, count, need = folder / "train" / "dog", 1, 2
    write_params(workdir, **tiny_params(folder))
    with pytest.raises(DataError) as err:
        fetch.main()
    message = str(err.value)
    assert message.startswith(f"{small}: {count} image(s), too few for")
    assert f"(need at least {need})" in message and "\n" not in message
    assert not Path("data").exists()
