"""Datasets as images in [0, 1] and integer labels: scikit-learn digits, MNIST, synthetic blobs.

No TensorFlow here, except Keras' MNIST downloader, imported only when MNIST is asked for and
no local copy exists (the one exception the import-linter contract allows).
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qmu_core.config import DataConfig, derive_seed
from qmu_core.errors import DataError

__all__ = ["MNIST_HELP", "Dataset", "load_dataset"]

MNIST_HELP = (
    "To use MNIST, either\n"
    "  1. put `t10k-images-idx3-ubyte.gz` and `t10k-labels-idx1-ubyte.gz` (optionally also the "
    "`train-*` pair) or Keras' `mnist.npz` in a directory and pass it with "
    "`--set data.mnist_path=DIR` (default directory: data/raw/mnist), or\n"
    "  2. run once with internet access so Keras downloads `mnist.npz` to ~/.keras/datasets, or\n"
    "  3. use the offline default `--set data.dataset=digits`."
)


@dataclass(frozen=True)
class Dataset:
    """Images as floats in [0, 1], their labels and a description of the source."""

    images: np.ndarray  # (N, side, side) float32 in [0, 1]
    labels: np.ndarray  # (N,) int64
    source: str

    @property
    def side(self) -> int:
        """Image height (= width)."""
        return int(self.images.shape[1])


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise DataError(f"Cannot read MNIST file {path}: {exc}.\n{MNIST_HELP}") from exc
    if len(raw) < 8:
        raise DataError(f"{path} is too short to be an IDX file ({len(raw)} bytes).\n{MNIST_HELP}")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(
            f"{path} is not an unsigned-byte IDX file (header {raw[:4].hex()}); expected the "
            f"original `*-ubyte.gz` files.\n{MNIST_HELP}"
        )
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {dims}, found {data.size} values.")
    return data.reshape(dims)


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
        x, y = _read_idx(img), _read_idx(lab)
        if len(x) != len(y):
            raise DataError(f"{img} has {len(x)} images but {lab} has {len(y)} labels.")
        images.append(x)
        labels.append(y)
        parts.append(f"{prefix} ({len(y)})")
    if images:
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
    except (OSError, KeyError, ValueError) as exc:
        raise DataError(
            f"{path} is not a Keras mnist.npz (needs x_train, y_train, x_test, y_test): {exc}.\n{MNIST_HELP}"
        ) from exc
    return Dataset(x.astype(np.float32) / 255.0, y.astype(np.int64), f"mnist.npz from {path}")


def _load_mnist(path: str | None) -> Dataset:
    if path:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise DataError(f"data.mnist_path={path!r} is not a directory.\n{MNIST_HELP}")
        found = _mnist_from_dir(directory)
        if found is None:
            raise DataError(f"No MNIST files in data.mnist_path={path!r}.\n{MNIST_HELP}")
        return found
    for candidate in (Path("data/raw/mnist"), Path("data/raw")):
        if candidate.is_dir() and (found := _mnist_from_dir(candidate)) is not None:
            return found
    cached = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
    if cached.is_file():
        return _mnist_from_npz(cached)
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


def load_dataset(data: DataConfig, *, seed: int = 0) -> Dataset:
    """Load the dataset `data.dataset` names, as images in [0, 1] and integer labels."""
    if data.dataset == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return Dataset((d.images / 16.0).astype(np.float32), d.target.astype(np.int64), "sklearn digits")
    if data.dataset == "mnist":
        return _load_mnist(data.mnist_path)
    return _synthetic(derive_seed(seed, "synthetic"))
