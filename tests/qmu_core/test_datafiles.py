"""Datasets from the user's files (`data.dataset=file`, issue 32 item 1): every format, every malformed case.

Each malformed file fails when it is read (the split stage, the first of a run), with a message
naming the file, the problem and the fix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from qmu_core.config import DataConfig, FeatureSpec
from qmu_core.datafiles import load_file
from qmu_core.datasets import fingerprint, load_dataset
from qmu_core.errors import DataError
from qmu_core.splits import split_roles
from tests.qmu_core.test_bad_inputs import write_idx


def patterns(n: int, n_classes: int, side: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` uint8 images, one bright block per class plus noise, and their labels 0..n_classes-1."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % n_classes
    images = rng.integers(0, 60, size=(n, side, side))
    for c in range(n_classes):
        r = (c * 2) % (side - 2)
        images[labels == c, r : r + 3, 1:-1] += 180
    return images.clip(0, 255).astype(np.uint8), labels


def fashion_idx(folder: Path, n: int = 400, n_classes: int = 4) -> Path:
    """A Fashion-MNIST-format pair under a prefix MNIST's names do not use."""
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = patterns(n, n_classes)
    write_idx(folder / "fashion-train-images-idx3-ubyte.gz", images)
    write_idx(folder / "fashion-train-labels-idx1-ubyte.gz", labels)
    return folder


def feature_csv(path: Path, n: int = 400, names: tuple[str, ...] = ("cat", "dog", "emu")) -> Path:
    """A CSV of 10 feature columns and text labels, the features shifted per class."""
    rng = np.random.default_rng(1)
    labels = np.arange(n) % len(names)
    x = rng.normal(size=(n, 10)) + labels[:, None] * np.linspace(0.5, 2.0, 10)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(10)])
    frame.insert(0, "species", [names[k] for k in labels])
    frame.to_csv(path, index=False)
    return path


def data(path: Path, **kw: object) -> DataConfig:
    return DataConfig.model_validate({"dataset": "file", "path": str(path), **kw})


# ----------------------------------------------------------------------------- formats


def test_idx_pairs_under_any_prefix(tmp_path: Path) -> None:
    ds = load_dataset(data(fashion_idx(tmp_path / "fashion")))
    assert ds.images.shape == (400, 8, 8) and ds.images.dtype == np.float32
    assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0
    assert sorted(np.unique(ds.labels)) == [0, 1, 2, 3] and ds.label_names is None
    assert "fashion-train-images-idx3-ubyte.gz (400)" in ds.source
    # the images file itself names the pair too
    one = load_file(str(tmp_path / "fashion" / "fashion-train-images-idx3-ubyte.gz"))
    np.testing.assert_array_equal(one.images, ds.images)


def test_csv_features_with_text_labels_are_numbered_and_recorded(tmp_path: Path) -> None:
    path = feature_csv(tmp_path / "animals.csv")
    ds = load_dataset(data(path, label_column="species"))
    assert ds.label_names == {0: "cat", 1: "dog", 2: "emu"}
    assert ds.images.shape == (400, 4, 4)  # 10 features padded to 16 = 4 x 4
    flat = ds.images.reshape(400, -1)
    assert flat[:, 10:].max() == 0.0 and flat[:, :10].min() == 0.0 and flat[:, :10].max() == 1.0
    # the split's facts record the mapping; the classes are the numbers
    cfg = data(path, label_column="species", classes=[0, 1, 2], forget_class=1, n_target_train=120,
               n_target_holdout=60, n_shadow_pool=120, n_test=60)  # fmt: skip
    out = split_roles(cfg, FeatureSpec(n_components=4), seed=0)
    assert out.facts.label_names == {"0": "cat", "1": "dog", "2": "emu"}
    with pytest.raises(DataError, match=r"labels \[5\].*numbered in sorted order: 0 = 'cat', 1 = 'dog'"):
        split_roles(cfg.model_copy(update={"classes": (0, 1, 5)}), FeatureSpec(n_components=4), seed=0)


def test_parquet_image_column_npz_and_image_folder(tmp_path: Path) -> None:
    images, labels = patterns(60, 3)
    frame = pd.DataFrame({"label": labels, "image": [im.ravel().tolist() for im in images]})
    frame.to_parquet(tmp_path / "t.parquet")
    table = load_file(str(tmp_path / "t.parquet"))
    np.testing.assert_allclose(table.images, images / 255.0, atol=1e-7)
    # CSV image cells: numbers separated by spaces
    frame.assign(image=[" ".join(map(str, im.ravel())) for im in images]).to_csv(tmp_path / "t.csv", index=False)
    np.testing.assert_array_equal(load_file(str(tmp_path / "t.csv")).images, table.images)
    # npz: images, and features
    np.savez(tmp_path / "a.npz", x=images, y=labels)
    np.testing.assert_array_equal(load_file(str(tmp_path / "a.npz")).images, table.images)
    np.savez(tmp_path / "f.npz", x=images.reshape(60, -1)[:, :5].astype(float), y=labels)
    assert load_file(str(tmp_path / "f.npz")).images.shape == (60, 3, 3)
    # a folder with one subfolder per class, named by the class
    for k, name in enumerate(("boot", "coat", "shirt")):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in np.flatnonzero(labels == k):
            Image.fromarray(images[i]).save(tmp_path / "pics" / name / f"{i}.png")
    pics = load_file(str(tmp_path / "pics"))
    assert pics.label_names == {0: "boot", 1: "coat", 2: "shirt"} and len(pics.labels) == 60
    order = np.concatenate([sorted(np.flatnonzero(labels == k), key=lambda i: f"{i}.png") for k in range(3)])
    np.testing.assert_allclose(pics.images, images[order] / 255.0, atol=1e-7)


def test_the_fingerprint_follows_the_bytes(tmp_path: Path) -> None:
    path = feature_csv(tmp_path / "a.csv")
    first = fingerprint(data(path, label_column="species"))
    assert first == fingerprint(data(path, label_column="species"))
    path.write_text(path.read_text().replace("cat", "cow"))
    assert fingerprint(data(path, label_column="species")) != first


def test_the_file_fields_enter_the_split_key_only_when_set(tmp_path: Path) -> None:
    """`path` and `label_column` at their defaults are left out: every built-in split keeps its key."""
    assert {"path", "label_column"}.isdisjoint(DataConfig().model_dump(mode="json"))
    dumped = data(tmp_path / "x.csv", label_column="species").model_dump(mode="json")
    assert dumped["path"] == str(tmp_path / "x.csv") and dumped["label_column"] == "species"
    assert DataConfig.model_validate(dumped) == data(tmp_path / "x.csv", label_column="species")
    assert DataConfig.model_validate({"path": " "}) == DataConfig()  # a cleared form box


def test_a_file_dataset_needs_a_path() -> None:
    with pytest.raises(ValueError, match=r"data.dataset='file' reads your own data from data.path.*--set data.path"):
        DataConfig.model_validate({"dataset": "file"})
    with pytest.raises(DataError, match=r"data.path='/nonexistent/x.csv': does not exist"):
        load_file("/nonexistent/x.csv")


# ----------------------------------------------------------------------------- malformed files


def _csv(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind,a,b\n0,1,2\n1,3,4\n", r"bad.csv': has no label column 'label' \(its columns: kind, a, b\).*label_col"),
        ("label,a,b\n0,1,2\n1,3,4,5\n0,1,1\n", r"has ragged rows \(.*Expected 3 fields in line 3, saw 4.*\)\. Every"),
        ("label,a,b\n0,1,2\n1,,4\n0,1,1\n", r"1 of 3 records have NaN, empty or infinite values \(lines 3\)\. Repair"),
        ("label,a,b\n3,1,2\n3,3,4\n", r"has one class only \(3, 2 records\)\. A classifier"),
        ("label,a,b\n0,1,2\ncat,3,4\n", r"mixes text and numbers \(e.g. 'cat' and '0'\)\. Use one kind"),
        ("label,a,b\n0.5,1,2\n1,3,4\n", r"has 1 labels that are not whole numbers \(e.g. 0.5, lines 2\).*regression"),
        ("label,a,b\n0,1,2\n,3,4\n1,1,1\n", r"label column 'label' is empty in 1 lines \(3\)"),
        ("label,a,name\n0,1,x\n1,3,y\n", r"has columns that are not numbers: name"),
        ("label,image\n0,1 2 3 4\n1,1 2 3\n", r"has images of mixed sizes \(3, 4 values\)"),
        ("label,image\n0,1 2 3\n1,1 2 3\n", r"has 3 values per image, not a square"),
    ],
    ids=[
        "no-label-column",
        "ragged",
        "nan",
        "one-class",
        "mixed-labels",
        "float-labels",
        "no-label",
        "text-feature",
        "mixed-image-sizes",
        "not-square",
    ],
)
def test_malformed_tables_name_the_file_problem_and_fix(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        load_file(_csv(tmp_path, text))
    assert "bad.csv" in str(err.value)


def test_text_mixed_with_numbers_in_one_label_column(tmp_path: Path) -> None:
    np.savez(tmp_path / "m.npz", x=np.zeros((3, 4)), y=np.array(["cat", "0", "1"]))
    with pytest.raises(DataError, match=r"m.npz': array y mixes text and numbers \(e.g. 'cat' and '0'\)"):
        load_file(str(tmp_path / "m.npz"))


def test_malformed_arrays_idx_and_folders(tmp_path: Path) -> None:
    np.savez(tmp_path / "noy.npz", x=np.zeros((4, 3)))
    with pytest.raises(DataError, match=r"noy.npz': has no array y \(its arrays: x\)\. Save .*numpy.savez"):
        load_file(str(tmp_path / "noy.npz"))
    np.savez(tmp_path / "ragged.npz", x=np.array([[1.0, 2.0], [3.0]], dtype=object), y=np.array([0, 1]))
    with pytest.raises(DataError, match=r"holds object arrays \(ragged records or mixed types\)"):
        load_file(str(tmp_path / "ragged.npz"))
    np.savez(tmp_path / "nan.npz", x=np.array([[0.0, np.nan], [1.0, 2.0]]), y=np.array([0, 1]))
    with pytest.raises(DataError, match=r"nan.npz': 1 of 2 records have NaN.*\(records 0\)"):
        load_file(str(tmp_path / "nan.npz"))
    # an IDX images file without its labels
    (tmp_path / "idx").mkdir()
    write_idx(tmp_path / "idx" / "x-images-idx3-ubyte.gz", patterns(10, 2)[0])
    with pytest.raises(DataError, match=r"without its labels file beside it \(x-labels-idx1-ubyte.gz\)"):
        load_file(str(tmp_path / "idx"))
    # images of mixed sizes in a class folder
    for name, side in (("a", 8), ("b", 10)):
        (tmp_path / "pics" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((side, side), np.uint8)).save(tmp_path / "pics" / name / "0.png")
    with pytest.raises(DataError, match=r"holds images of mixed sizes: a/0.png is 8x8, b/0.png is 10x10\. Resize"):
        load_file(str(tmp_path / "pics"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"has a suffix QMU does not read \(.txt\)"):
        load_file(str(tmp_path / "notes.txt"))
