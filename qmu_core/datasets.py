"""Datasets as images in [0, 1] and integer labels: scikit-learn digits, MNIST, synthetic blobs.

No TensorFlow here, except Keras' MNIST downloader, imported only when MNIST is asked for and
no local copy exists (the one exception the import-linter contract allows).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from qmu_core.artifacts import sha256_file
from qmu_core.config import DataConfig, derive_seed
from qmu_core.errors import DataError
from qmu_core.imagesets import Dataset, read_idx

__all__ = ["MNIST_HELP", "Dataset", "check_finite", "fingerprint", "load_dataset", "read_idx"]

MNIST_HELP = (
    "To use MNIST, either\n"
    "  1. put `t10k-images-idx3-ubyte.gz` and `t10k-labels-idx1-ubyte.gz` (optionally also the "
    "`train-*` pair) or Keras' `mnist.npz` in a directory on the machine that runs the flow and set "
    "`data.mnist_path` to it (Prefect form: the data section's Mnist Path field; CLI: "
    "`--set data.mnist_path=DIR`; default directory: data/raw/mnist), or\n"
    "  2. run once with internet access so Keras downloads `mnist.npz` to ~/.keras/datasets, or\n"
    "  3. use the offline default: `data.dataset` = `digits` (form: Dataset; CLI: `--set data.dataset=digits`)."
)


def _mnist_from_dir(directory: Path) -> Dataset | None:
    images, labels, parts = [], [], []
    for prefix in ("train", "t10k"):
        img = next(iter(sorted(directory.glob(f"{prefix}-images*idx3-ubyte*"))), None)
        lab = next(iter(sorted(directory.glob(f"{prefix}-labels*idx1-ubyte*"))), None)
        if img is None and lab is None:
            continue
        if img is None or lab is None:
            raise DataError(
                f"{directory} has only one of the {prefix} images/labels pair "
                f"(images: {img}, labels: {lab}).\n{MNIST_HELP}"
            )
        mnist = {"what": "MNIST file", "help_text": MNIST_HELP}
        x, y = read_idx(img, "images", **mnist), read_idx(lab, "labels", **mnist)
        if len(x) != len(y):
            raise DataError(
                f"MNIST files {img} ({len(x)} images) and {lab} ({len(y)} labels) do not match: every image "
                f"needs one label. Use an intact {prefix}-images/{prefix}-labels pair from the same "
                f"download.\n{MNIST_HELP}"
            )
        images.append(x)
        labels.append(y)
        parts.append(f"{prefix} ({len(y)})")
    if images:
        sides = {x.shape[1:] for x in images}
        if len(sides) > 1:
            raise DataError(f"MNIST files in {directory} hold images of different sizes {sorted(sides)}.\n{MNIST_HELP}")
        return Dataset(
            np.concatenate(images).astype(np.float32) / 255.0,
            np.concatenate(labels).astype(np.int64),
            f"mnist idx from {directory}: " + ", ".join(parts),
        )
    npz = directory / "mnist.npz"
    if npz.is_file():
        return _mnist_from_npz(npz)
    return None


def _mnist_from_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            x = np.concatenate([f["x_train"], f["x_test"]])
            y = np.concatenate([f["y_train"], f["y_test"]])
    except (OSError, KeyError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path} is not a readable Keras mnist.npz (needs x_train, y_train, x_test, y_test): "
            f"{type(exc).__name__}: {exc}. Replace it with an intact copy.\n{MNIST_HELP}"
        ) from None
    if x.ndim != 3 or x.shape[1] != x.shape[2] or y.ndim != 1 or len(x) != len(y):
        raise DataError(
            f"{path} holds images of shape {x.shape} and labels of shape {y.shape}; expected (N, side, side) "
            f"images and N labels. Replace it with an intact copy.\n{MNIST_HELP}"
        )
    return Dataset(x.astype(np.float32) / 255.0, y.astype(np.int64), f"mnist.npz from {path}")


_MNIST_NAMES = ("train-images*idx3-ubyte*", "train-labels*idx1-ubyte*", "t10k-images*idx3-ubyte*",
                 "t10k-labels*idx1-ubyte*", "mnist.npz")  # fmt: skip


def _mnist_files(directory: Path) -> list[Path]:
    return sorted({p for pattern in _MNIST_NAMES for p in directory.glob(pattern) if p.is_file()})


def _mnist_location(path: str | None) -> Path | None:
    """Where MNIST is read from: a directory, Keras' cached mnist.npz, or None (download)."""
    if path:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise DataError(f"data.mnist_path={path!r} is not a directory.\n{MNIST_HELP}")
        if not _mnist_files(directory):
            raise DataError(f"No MNIST files in data.mnist_path={path!r}.\n{MNIST_HELP}")
        return directory
    for candidate in (Path("data/raw/mnist"), Path("data/raw")):
        if candidate.is_dir() and _mnist_files(candidate):
            return candidate
    cached = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
    return cached if cached.is_file() else None


def fingerprint(data: DataConfig) -> str:
    """What the data stage will read, by content.

    It enters the split's key, so changed files (same path, other bytes) recompute everything downstream.

    MNIST: SHA-256 over the names and bytes of the files found (about 30 ms for the test set);
    digits: the scikit-learn version that ships it; synthetic: generated from the seed.
    """
    found = _source_fingerprint(data)
    if data.members:
        from qmu_core.members import members_fingerprint

        found += "|" + members_fingerprint(data.members)
    return found


def _source_fingerprint(data: DataConfig) -> str:
    if data.dataset == "digits":
        import sklearn

        return f"digits:sklearn-{sklearn.__version__}"
    if data.dataset == "synthetic":
        return "synthetic"
    if data.dataset == "file":
        from qmu_core.datafiles import file_fingerprint

        return file_fingerprint(data.path, data.label_column)
    where = _mnist_location(data.mnist_path)
    if where is None:
        return "mnist:keras-download"
    files = [where] if where.is_file() else _mnist_files(where)
    listing = "\n".join(f"{f.name} {sha256_file(f)}" for f in files)
    return f"mnist:{hashlib.sha256(listing.encode()).hexdigest()[:16]}"


def _load_mnist(path: str | None) -> Dataset:
    where = _mnist_location(path)
    if where is not None and where.is_dir():
        found = _mnist_from_dir(where)
        if found is None:
            raise DataError(f"No MNIST images/labels pair or mnist.npz in {where}.\n{MNIST_HELP}")
        return found
    if where is not None:
        return _mnist_from_npz(where)
    try:  # needs the internet; fails fast offline
        from qmu_core._tf import tf_keras

        (xa, ya), (xb, yb) = tf_keras.datasets.mnist.load_data()
    except Exception as exc:  # noqa: BLE001 - any download failure gets the same remedy
        raise DataError(
            f"MNIST was requested but no local copy was found and the Keras download failed "
            f"({type(exc).__name__}: {str(exc)[:200]}).\n{MNIST_HELP}"
        ) from None
    x = np.concatenate([xa, xb]).astype(np.float32) / 255.0
    return Dataset(x, np.concatenate([ya, yb]).astype(np.int64), "mnist via keras download")


def _synthetic(seed: int, n: int = 2000, side: int = 8, n_classes: int = 10) -> Dataset:
    rng = np.random.default_rng(seed)
    centers = rng.uniform(0, 1, size=(n_classes, side * side))
    labels = rng.integers(0, n_classes, size=n)
    images = np.clip(centers[labels] + rng.normal(0, 0.15, size=(n, side * side)), 0, 1)
    return Dataset(images.reshape(n, side, side).astype(np.float32), labels, "synthetic blobs")


def check_finite(ds: Dataset) -> Dataset:
    """`ds` unchanged, or a `DataError` if any image has a NaN or infinite pixel."""
    flat = ds.images.reshape(len(ds.images), -1)
    bad = np.flatnonzero(~np.isfinite(flat).all(axis=1))
    if len(bad):
        first = ", ".join(str(i) for i in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise DataError(
            f"{ds.source}: {len(bad)} of {len(flat)} images have NaN or infinite pixels (records {first}). "
            "Repair or drop those records in the source file, or use another dataset "
            "(`data.dataset` = `digits`: the form's Dataset field, or `--set data.dataset=digits`)."
        )
    return ds


def load_dataset(data: DataConfig, *, seed: int = 0) -> Dataset:
    """Load the dataset `data.dataset` names, as images in [0, 1] and integer labels.

    Raises:
        DataError: If the files are missing, truncated, corrupt or mismatched, or an image has
            NaN or infinite pixels.
    """
    if data.dataset == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        ds = Dataset((d.images / 16.0).astype(np.float32), d.target.astype(np.int64), "sklearn digits")
    elif data.dataset == "mnist":
        ds = _load_mnist(data.mnist_path)
    elif data.dataset == "file":
        from qmu_core.datafiles import load_file

        ds = load_file(data.path, data.label_column)
    else:
        ds = _synthetic(derive_seed(seed, "synthetic"))
    return check_finite(ds)
