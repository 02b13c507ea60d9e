"""Datasets: stratified sampling, the fetch stage on image folders and archives, preprocess_data."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image_folder, tiny_params, write_params
from PIL import Image

import transfer
from transfer import fetch
from transfer.data.cifar10 import preprocess_data
from transfer.data.folders import DataError
from transfer.data.images import decode_image
from transfer.data.splits import stratified_split, stratified_subset
from transfer.runtime.errors import UserError

SIZE = 16  # data.image_size in tiny_params
COUNTS = [100, 50, 20]


def imbalanced_labels() -> np.ndarray:
    """Shuffled labels with class counts 100, 50 and 20."""
    return np.random.default_rng(0).permutation(np.repeat([0, 1, 2], COUNTS))


def run_fetch(workdir: Path, folder: Path, **data: object) -> Path:
    """Write tiny params for `folder` (with `data` overrides), run fetch, return data/prepared."""
    write_params(workdir, **tiny_params(folder, data=data))
    fetch.main()
    return workdir / "data" / "prepared"


def load_prepared(out: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split written by fetch."""
    return np.load(out / f"{split}_x.npy"), np.load(out / f"{split}_y.npy")


def data_listing(workdir: Path) -> list[str]:
    """Names under workdir/data (empty when it does not exist)."""
    data = workdir / "data"
    return sorted(p.name for p in data.iterdir()) if data.exists() else []


def save(path: Path, image: Image.Image) -> Path:
    """Save `image` at `path`, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def truncated_png(path: Path) -> Path:
    """Write a noise PNG cut off in the middle of its pixel data."""
    pixels = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    save(path, Image.fromarray(pixels))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


# --- stratified sampling ----------------------------------------------------------------------


def test_subset_keeps_fraction_of_each_class():
    """fraction 0.1 keeps round(n * 0.1) of each class, as sorted unique indices."""
    labels = imbalanced_labels()
    idx = stratified_subset(labels, 0.1, np.random.default_rng(1))
    assert np.bincount(labels[idx]).tolist() == [10, 5, 2]
    assert np.all(np.diff(idx) > 0)
    assert idx.min() >= 0 and idx.max() < len(labels)


def test_subset_keeps_at_least_one_per_class():
    """A fraction that rounds to zero for a small class still keeps one example of it."""
    labels = np.repeat([0, 1], [100, 3])
    idx = stratified_subset(labels, 0.01, np.random.default_rng(1))
    assert np.bincount(labels[idx]).tolist() == [1, 1]


def test_subset_full_fraction_keeps_everything():
    """fraction 1 keeps every index."""
    labels = imbalanced_labels()
    idx = stratified_subset(labels, 1.0, np.random.default_rng(1))
    np.testing.assert_array_equal(idx, np.arange(len(labels)))


def test_subset_is_seeded():
    """The same seed picks the same indices, a different seed different ones."""
    labels = imbalanced_labels()
    a = stratified_subset(labels, 0.1, np.random.default_rng(7))
    b = stratified_subset(labels, 0.1, np.random.default_rng(7))
    c = stratified_subset(labels, 0.1, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_split_takes_val_share_of_each_class():
    """val holds round(n * val_split) of each class; train and val partition all positions."""
    labels = imbalanced_labels()
    train, val = stratified_split(labels, 0.1, np.random.default_rng(1))
    assert np.bincount(labels[val]).tolist() == [10, 5, 2]
    assert np.bincount(labels[train]).tolist() == [90, 45, 18]
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    assert not set(train) & set(val)
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))


def test_split_is_seeded():
    """The same seed gives the same split, a different seed a different one."""
    labels = imbalanced_labels()
    a = stratified_split(labels, 0.2, np.random.default_rng(3))
    b = stratified_split(labels, 0.2, np.random.default_rng(3))
    c = stratified_split(labels, 0.2, np.random.default_rng(4))
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_split_keeps_a_single_example_in_train():
    """A class with one example stays in train; a class of two gives one to each side."""
    labels = np.array([0] * 10 + [1] + [2] * 2)
    train, val = stratified_split(labels, 0.9, np.random.default_rng(0))
    assert 10 in train and 10 not in val
    assert np.bincount(labels[train], minlength=3).tolist() == [1, 1, 1]
    assert np.bincount(labels[val], minlength=3).tolist() == [9, 0, 1]


# --- fetch on an image folder -----------------------------------------------------------------


def test_fetch_writes_prepared_arrays(workdir, tiny_folder):
    """fetch writes uint8 images, integer labels and the class names, split per class."""
    out = run_fetch(workdir, tiny_folder)
    expected = {"train": 6, "val": 2, "test": 3}  # 8 train images per class, val_split 0.25
    for split, per_class in expected.items():
        x, y = load_prepared(out, split)
        assert x.shape == (3 * per_class, SIZE, SIZE, 3) and x.dtype == np.uint8
        assert y.shape == (3 * per_class,) and np.issubdtype(y.dtype, np.integer)
        assert np.bincount(y).tolist() == [per_class] * 3
    assert json.loads((out / "classes.json").read_text()) == ["cat", "dog", "fox"]
    assert data_listing(workdir) == ["prepared"]


def test_fetch_train_and_val_partition_the_training_images(workdir, tiny_folder):
    """train and val together are exactly the training images, with no image in both."""
    out = run_fetch(workdir, tiny_folder)
    train_x, _ = load_prepared(out, "train")
    val_x, _ = load_prepared(out, "val")
    train = {img.tobytes() for img in train_x}
    val = {img.tobytes() for img in val_x}
    source = {decode_image(p, SIZE).tobytes()
              for p in sorted((tiny_folder / "train").glob("*/*.png"))}
    assert len(train) == len(train_x) and len(val) == len(val_x)
    assert not train & val
    assert train | val == source


def test_fetch_fraction_takes_a_stratified_share(workdir, tiny_folder):
    """data.fraction 0.5 halves every training class before the split; test is untouched."""
    out = run_fetch(workdir, tiny_folder, fraction=0.5)
    assert np.bincount(load_prepared(out, "train")[1]).tolist() == [3, 3, 3]
    assert np.bincount(load_prepared(out, "val")[1]).tolist() == [1, 1, 1]
    assert np.bincount(load_prepared(out, "test")[1]).tolist() == [3, 3, 3]


def test_fetch_is_deterministic(workdir, tiny_folder):
    """Running fetch twice with the same seed writes identical arrays."""
    out = run_fetch(workdir, tiny_folder)
    first = {s: load_prepared(out, s) for s in ("train", "val", "test")}
    run_fetch(workdir, tiny_folder)
    for split, (x, y) in first.items():
        x2, y2 = load_prepared(out, split)
        np.testing.assert_array_equal(x, x2)
        np.testing.assert_array_equal(y, y2)
    assert data_listing(workdir) == ["prepared"]


def test_fetch_labels_follow_sorted_class_names(workdir, tmp_path):
    """Classes are sorted by name and each label points at its own folder's images."""
    created = ["zebra", "apple", "mango"]  # make_image_folder colours by this order
    folder = make_image_folder(tmp_path / "ds", created, 4, 3)
    out = run_fetch(workdir, folder)
    classes = json.loads((out / "classes.json").read_text())
    assert classes == ["apple", "mango", "zebra"]
    hues = np.array([[(c * 97) % 256, (c * 53 + 80) % 256, (c * 151 + 160) % 256]
                     for c in range(len(created))])
    x, y = load_prepared(out, "test")
    for image, label in zip(x, y):
        nearest = np.argmin(np.abs(hues - image.reshape(-1, 3).mean(0)).sum(1))
        assert classes[label] == created[nearest]


# --- image modes and stray files --------------------------------------------------------------


def red_palette_image(size: tuple[int, int]) -> Image.Image:
    """A palette ("P") image whose every pixel is palette entry 0, pure red."""
    image = Image.new("P", size, 0)
    image.putpalette([255, 0, 0] + [0, 0, 0] * 255)
    return image


@pytest.mark.parametrize(("name", "image", "colour"), [
    ("gray.png", Image.new("L", (10, 20), 128), [128, 128, 128]),
    ("alpha.PNG", Image.new("RGBA", (40, 40), (0, 0, 255, 90)), [0, 0, 255]),
    ("palette.png", red_palette_image((40, 40)), [255, 0, 0]),
    ("photo.JPG", Image.new("RGB", (30, 12), (0, 200, 0)), [0, 200, 0]),
    ("gray.jpeg", Image.new("L", (20, 10), 60), [60, 60, 60]),
])
def test_decode_image_modes(tmp_path, name, image, colour):
    """Grayscale, RGBA, palette and JPEG images of any size decode to RGB uint8 of the set size."""
    path = save(tmp_path / name, image)
    pixels = decode_image(path, SIZE)
    assert pixels.shape == (SIZE, SIZE, 3) and pixels.dtype == np.uint8
    np.testing.assert_allclose(pixels.reshape(-1, 3), np.tile(colour, (SIZE * SIZE, 1)), atol=3)


def test_fetch_mixed_modes_and_stray_files(workdir, tmp_path, capsys):
    """Mixed modes, sizes, formats (PNG, JPEG, BMP, GIF, WebP) and upper-case suffixes load;
    stray files (.DS_Store, Thumbs.db, .txt) are counted and skipped, hidden dirs too."""
    root = tmp_path / "mixed"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            folder = root / split / cls
            save(folder / "gray.png", Image.new("L", (10, 20), 128))
            save(folder / "alpha.PNG", Image.new("RGBA", (40, 40), (0, 0, 255, 90)))
            save(folder / "palette.png", red_palette_image((40, 40)))
            save(folder / "photo.JPG", Image.new("RGB", (30, 12), (0, 200, 0)))
            save(folder / "scan.BMP", Image.new("RGB", (50, 50), (10, 20, 30)))
            save(folder / "anim.gif", Image.new("L", (25, 25), 200))
            save(folder / "pic.webp", Image.new("RGB", (64, 48), (90, 90, 0)))
            (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
            (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
            (folder / "notes.txt").write_text("not an image\n")
    (root / "train" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    save(root / "train" / ".ipynb_checkpoints" / "gray.png", Image.new("L", (8, 8)))
    out = run_fetch(workdir, root)
    assert "ignored 14 file(s)" in capsys.readouterr().out  # 3 in each class folder, 2 more
    images = []
    for split, count in (("train", 10), ("val", 4), ("test", 14)):
        x, y = load_prepared(out, split)
        assert x.shape == (count, SIZE, SIZE, 3) and x.dtype == np.uint8
        assert np.bincount(y).tolist() == [count // 2] * 2
        images.append(x)
    red = [np.all(img == [255, 0, 0]) for img in np.concatenate(images)]
    assert sum(red) == 4  # one palette image per class and split
    assert json.loads((out / "classes.json").read_text()) == ["a", "b"]


# --- corrupt images leave nothing behind ------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("kind", ["garbage-jpg", "truncated-png"])
def test_corrupt_image_names_file_and_leaves_nothing(workdir, tmp_path, split, kind):
    """A corrupt image fails fetch with a DataError naming it, without partial outputs."""
    folder = make_image_folder(tmp_path / "ds", ["cat", "dog"], 4, 2)
    if kind == "garbage-jpg":
        bad = folder / split / "dog" / "bad.jpg"
        bad.write_bytes(b"this is not a jpeg" * 10)
    else:
        bad = truncated_png(folder / split / "dog" / "bad.png")
    write_params(workdir, **tiny_params(folder))
    with pytest.raises(DataError) as err:
        fetch.main()
    assert isinstance(err.value, UserError)
    assert str(bad) in str(err.value) and "data.skip_corrupt" in str(err.value)
    assert "\n" not in str(err.value)
    assert data_listing(workdir) == []


def test_skip_corrupt_leaves_out_and_counts_bad_images(workdir, tmp_path, capsys):
    """With data.skip_corrupt, corrupt images in train and test are skipped and counted."""
    folder = make_image_folder(tmp_path / "ds", ["cat", "dog"], 4, 2)
    (folder / "train" / "dog" / "bad.jpg").write_bytes(b"this is not a jpeg" * 10)
    truncated_png(folder / "test" / "cat" / "bad.png")
    out = run_fetch(workdir, folder, skip_corrupt=True)
    assert "skipped 2 corrupt image(s)" in capsys.readouterr().out
    sizes = {split: len(load_prepared(out, split)[1]) for split in ("train", "val", "test")}
    assert sizes == {"train": 6, "val": 2, "test": 4}


def test_skip_corrupt_still_needs_an_image_per_class(workdir, tmp_path):
    """A class whose every image is corrupt is an error even with data.skip_corrupt."""
    folder = make_image_folder(tmp_path / "ds", ["cat", "dog"], 2, 1)
    (folder / "test" / "dog" / "000.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="test/dog: no image in this class folder decodes"):
        run_fetch(workdir, folder, skip_corrupt=True)
    assert data_listing(workdir) == []


def test_failed_fetch_keeps_previous_output(workdir, tmp_path):
    """A fetch that fails on a corrupt image leaves the earlier data/prepared untouched."""
    folder = make_image_folder(tmp_path / "ds", ["cat", "dog"], 4, 2)
    out = run_fetch(workdir, folder)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    truncated_png(folder / "train" / "cat" / "zz.png")
    with pytest.raises(DataError, match="zz.png"):
        fetch.main()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert data_listing(workdir) == ["prepared"]


# --- folder layout errors ---------------------------------------------------------------------


@pytest.mark.parametrize(("removed", "kept"), [("test", "train"), ("train", "test")])
def test_class_in_one_split_only(workdir, tmp_path, removed, kept):
    """A class folder in only one of train and test is a DataError naming the class."""
    folder = make_image_folder(tmp_path / "ds", ["cat", "dog", "emu"], 2, 1)
    shutil.rmtree(folder / removed / "emu")
    write_params(workdir, **tiny_params(folder))
    with pytest.raises(DataError, match=rf"only in {kept}: \['emu'\]"):
        fetch.main()
    assert data_listing(workdir) == []


@pytest.mark.parametrize("leftover", [None, "notes.txt"])
def test_class_folder_without_images(workdir, tmp_path, leftover):
    """A class folder with no images (empty or stray files only) is a DataError naming it."""
    folder = make_image_folder(tmp_path / "ds", ["cat", "dog", "emu"], 2, 1)
    empty = folder / "train" / "emu"
    for image in empty.iterdir():
        image.unlink()
    if leftover:
        (empty / leftover).write_text("x")
    write_params(workdir, **tiny_params(folder))
    with pytest.raises(DataError) as err:
        fetch.main()
    assert str(empty) in str(err.value) and "no images" in str(err.value)
    assert data_listing(workdir) == []


def test_single_class_is_rejected(workdir, tmp_path):
    """A dataset with one class cannot be classified and is rejected."""
    folder = make_image_folder(tmp_path / "ds", ["cat"], 2, 1)
    write_params(workdir, **tiny_params(folder))
    with pytest.raises(DataError, match="need at least 2"):
        fetch.main()


def test_path_that_is_neither_folder_nor_archive(workdir, tmp_path):
    """data.path naming a plain file is a DataError naming it."""
    path = tmp_path / "dataset.txt"
    path.write_text("x")
    write_params(workdir, **tiny_params(path))
    with pytest.raises(DataError, match="not a directory or an archive"):
        fetch.main()


# --- archives ---------------------------------------------------------------------------------


@pytest.fixture
def unpack_dir(tmp_path, monkeypatch) -> Path:
    """A private temp dir for archive unpacking, to check it is cleaned up."""
    path = tmp_path / "systmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


@pytest.mark.parametrize("fmt", ["gztar", "zip"])
def test_fetch_reads_archive(workdir, tmp_path, unpack_dir, fmt):
    """A .tar.gz or .zip whose single top folder holds train/ and test/ is read like a folder."""
    make_image_folder(tmp_path / "src" / "dataset", ["cat", "dog"], 4, 2)
    archive = Path(shutil.make_archive(str(tmp_path / "dataset"), fmt, tmp_path / "src"))
    assert archive.name in ("dataset.tar.gz", "dataset.zip")
    out = run_fetch(workdir, archive)
    assert json.loads((out / "classes.json").read_text()) == ["cat", "dog"]
    assert np.bincount(load_prepared(out, "train")[1]).tolist() == [3, 3]
    assert np.bincount(load_prepared(out, "val")[1]).tolist() == [1, 1]
    assert np.bincount(load_prepared(out, "test")[1]).tolist() == [2, 2]
    assert list(unpack_dir.iterdir()) == []


def with_mac_leftovers(folder: Path) -> int:
    """Add what a copy from a Mac leaves in an image folder: an AppleDouble `._name` beside
    every image (a suffix that reads as an image), `.DS_Store` and `Thumbs.db` in each folder,
    and `__MACOSX/` at the top mirroring the tree; the number of files added."""
    added = 0
    for image in sorted(folder.rglob("*.png")):
        (image.parent / f"._{image.name}").write_bytes(b"\0\5\x16\7 not an image")
        mirror = folder / "__MACOSX" / image.relative_to(folder).parent / f"._{image.name}"
        mirror.parent.mkdir(parents=True, exist_ok=True)
        mirror.write_bytes(b"\0\5\x16\7")
        added += 2
    for sub in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        if "__MACOSX" not in sub.parts:
            (sub / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
            (sub / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
            added += 2
    return added


@pytest.mark.parametrize("layout", ["train-test", "flat"])
@pytest.mark.parametrize("fmt", ["folder", "zip"])
def test_fetch_skips_mac_leftovers(workdir, tmp_path, capsys, layout, fmt):
    """A folder copied from a Mac (._* beside each photo, .DS_Store, Thumbs.db, __MACOSX/), in
    either layout, as a folder or a zip, reads the photos alone and says how many files it
    ignored; __MACOSX/ is never taken for a class."""
    root = make_image_folder(tmp_path / "src" / "photos", ["cat", "dog"], 6, 3)
    if layout == "flat":  # one folder of class folders: the test set is split off
        shutil.rmtree(root / "test")
        root = root / "train"
    added = with_mac_leftovers(root)
    path = root if fmt == "folder" else Path(shutil.make_archive(str(tmp_path / "photos"),
                                                                  "zip", root))
    out = run_fetch(workdir, path)
    assert f"ignored {added} file(s)" in capsys.readouterr().out
    assert json.loads((out / "classes.json").read_text()) == ["cat", "dog"]
    total = sum(len(load_prepared(out, split)[1]) for split in ("train", "val", "test"))
    assert total == (12 if layout == "flat" else 18)


def test_archive_without_train_folder(workdir, tmp_path, unpack_dir):
    """An archive with no layout (training/ is not train/) is a DataError naming the archive,
    and its unpacked copy is removed."""
    make_image_folder(tmp_path / "src" / "dataset", ["cat", "dog"], 2, 1)
    (tmp_path / "src" / "dataset" / "train").rename(tmp_path / "src" / "dataset" / "training")
    archive = shutil.make_archive(str(tmp_path / "dataset"), "gztar", tmp_path / "src")
    write_params(workdir, **tiny_params(Path(archive)))
    with pytest.raises(DataError, match=r"dataset.tar.gz: no image folders found"):
        fetch.main()
    assert data_listing(workdir) == []
    assert list(unpack_dir.iterdir()) == []


def test_corrupt_archive(workdir, tmp_path, unpack_dir):
    """A .tar.gz that is not an archive is a DataError naming it."""
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"not gzip at all" * 20)
    write_params(workdir, **tiny_params(archive))
    with pytest.raises(DataError, match="broken.tar.gz: cannot unpack archive"):
        fetch.main()
    assert data_listing(workdir) == []
    assert list(unpack_dir.iterdir()) == []


def unsafe_archive(path: Path, member: tarfile.TarInfo, content: bytes = b"") -> Path:
    """A .tar.gz of a small image folder plus one `member` that points outside it."""
    import io

    with tarfile.open(path, "w:gz") as tar:
        image = io.BytesIO()
        Image.new("RGB", (8, 8)).save(image, "PNG")
        for split in ("train", "test"):
            info = tarfile.TarInfo(f"dataset/{split}/cat/0.png")
            info.size = len(image.getvalue())
            tar.addfile(info, io.BytesIO(image.getvalue()))
        member.size = len(content)
        tar.addfile(member, io.BytesIO(content))
    return path


@pytest.mark.parametrize("kind", ["outside", "absolute link"])
def test_unsafe_archive_member_is_one_error_line(workdir, tmp_path, kind):
    """A member that would land outside the folder, or a link to an absolute path: `fetch`
    exits 2 with one `error:` line naming the archive, no traceback, nothing written outside."""
    if kind == "outside":
        member = tarfile.TarInfo("dataset/../../escaped.txt")
        content = b"escaped"
    else:
        member = tarfile.TarInfo("dataset/train/cat/link.png")
        member.type, member.linkname = tarfile.SYMTYPE, "/etc/hostname"
        content = b""
    archive = unsafe_archive(tmp_path / "unsafe.tar.gz", member, content)
    write_params(workdir, **tiny_params(archive))
    before = sorted(p for p in tmp_path.rglob("*"))
    out = subprocess.run([sys.executable, "-m", "transfer.fetch"], cwd=workdir,
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out.stderr
    assert "unsafe.tar.gz: unsafe archive member refused" in lines[0]
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not (workdir / "data").exists()


def test_repository_without_a_commit_is_one_error_line(workdir, tiny_folder):
    """`fetch` in a git repository with no commit yet (where DVCLive would stop `train` with a
    traceback): exit 2, one `error:` line that says to commit, nothing written."""
    subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
    write_params(workdir, **tiny_params(tiny_folder))
    out = subprocess.run([sys.executable, "-m", "transfer.fetch"], cwd=workdir,
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no commit yet" in lines[0]
    assert sorted(p.name for p in workdir.iterdir()) == [".git", "params.yaml"]


# --- preprocess_data --------------------------------------------------------------------------


@pytest.mark.parametrize("y_shape", [(6,), (6, 1)])
def test_preprocess_data(y_shape):
    """X becomes float32 with the same values; Y becomes a (m, 10) one-hot whose argmax is Y."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    Y = np.array([0, 3, 9, 1, 9, 5]).reshape(y_shape)
    X_p, Y_p = preprocess_data(X, Y)
    assert X_p.dtype == np.float32 and X_p.shape == X.shape
    np.testing.assert_array_equal(X_p, X.astype(np.float32))
    assert Y_p.dtype == np.float32 and Y_p.shape == (6, 10)
    np.testing.assert_array_equal(Y_p.argmax(1), Y.reshape(-1))
    np.testing.assert_array_equal(Y_p.sum(1), np.ones(6))


@pytest.mark.parametrize(("x_shape", "n_labels", "match"), [
    ((6, 32, 32, 3), 5, "6 images but Y has 5 labels"),
    ((6, 32, 32), 6, "X must have shape"),
    ((6, 32, 32, 1), 6, "X must have shape"),
])
def test_preprocess_data_rejects_bad_shapes(x_shape, n_labels, match):
    """Mismatched lengths or a wrong image rank raise ValueError."""
    with pytest.raises(ValueError, match=match):
        preprocess_data(np.zeros(x_shape, np.uint8), np.zeros(n_labels, np.int64))


def test_preprocess_data_is_exported():
    """`from transfer import preprocess_data` gives the data module's function."""
    from transfer import preprocess_data as exported

    assert exported is preprocess_data
    assert "preprocess_data" in transfer.__all__


def test_sixteen_bit_grayscale_keeps_its_range():
    """A 16-bit grayscale PNG maps to 8 bits by its top byte instead of clipping to white."""
    from PIL import Image

    from transfer.data.images import to_rgb_array

    ramp = np.tile(np.arange(0, 65536, 4096, dtype=np.uint16), (16, 1))
    pixels = to_rgb_array(Image.fromarray(ramp), 16)
    assert pixels[0, :, 0].tolist() == list(range(0, 256, 16))


def test_empty_validation_split_is_an_error(workdir, tmp_path):
    """A share so small that no class keeps two images leaves no validation set: an error."""
    from transfer.fetch import main
    from transfer.runtime.errors import UserError

    folder = make_image_folder(tmp_path / "few", ["cat", "dog"], 5, 1)
    write_params(workdir, **tiny_params(folder, data={"fraction": 0.1}))
    with pytest.raises(UserError, match="val split is empty"):
        main()
    assert not (workdir / "data" / "prepared").exists()
