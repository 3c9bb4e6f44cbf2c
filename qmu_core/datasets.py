"""Datasets as images in [0, 1] and integer labels: scikit-learn digits, MNIST, synthetic blobs.

No TensorFlow here, except Keras' MNIST downloader, imported only when MNIST is asked for and
no local copy exists (the one exception the import-linter contract allows).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qmu_core.artifacts import sha256_file
from qmu_core.config import DataConfig, derive_seed
from qmu_core.errors import DataError

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


@dataclass(frozen=True)
class Dataset:
    """Images as floats in [0, 1], their labels and a description of the source."""

    images: np.ndarray  # (N, side, side) float32 in [0, 1]
    labels: np.ndarray  # (N,) int64
    source: str
    label_names: dict[int, str] | None = None  # a file's own labels, when they are not integers

    @property
    def side(self) -> int:
        """Image height (= width)."""
        return int(self.images.shape[1])


# IDX files hold either images (N x rows x cols) or labels (N).
_IDX_NDIM = {"images": 3, "labels": 1}


def _bad_file(
    path: Path,
    why: str,
    fix: str = "Replace it with an intact copy of the original file.",
    help_text: str = MNIST_HELP,
) -> DataError:
    what = "MNIST file" if help_text == MNIST_HELP else "IDX file"
    return DataError(f"{what} {path} {why}. {fix}" + (f"\n{help_text}" if help_text else ""))


def read_idx(path: Path, kind: str, help_text: str = MNIST_HELP) -> np.ndarray:
    """Read an IDX file holding `kind` (``images`` or ``labels``), gzipped or not.

    Errors end with `help_text` (how to get MNIST, by default).
    """
    bad = functools.partial(_bad_file, help_text=help_text)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        if str(exc).startswith("Not a gzipped file"):
            raise bad(path, f"is not a gzip file ({exc})") from None
        raise bad(path, f"is a truncated or corrupt gzip file ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise bad(path, f"cannot be read ({exc})") from None
    if len(raw) < 4:
        raise bad(path, f"is too short to be an IDX file ({len(raw)} bytes)")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise bad(path, f"is not an unsigned-byte IDX file (header {raw[:4].hex()}; expected 0000080{_IDX_NDIM[kind]})")
    want = _IDX_NDIM[kind]
    if ndim != want:
        other = next(k for k, n in _IDX_NDIM.items() if n == ndim) if ndim in _IDX_NDIM.values() else None
        raise bad(
            path,
            f"holds {ndim}-dimensional data, but an IDX {kind} file holds {want}"
            + (f" (it looks like a {other} file)" if other else ""),
            "Check that the images and labels files are not swapped or misnamed "
            "(`*-images-idx3-ubyte*` holds images, `*-labels-idx1-ubyte*` labels), or replace the file "
            "with an intact copy.",
        )
    if len(raw) < 4 + 4 * ndim:
        raise bad(path, f"is truncated inside its header ({len(raw)} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        what = "is truncated" if data.size < int(np.prod(dims)) else "has trailing bytes"
        raise bad(path, f"{what}: its header says {dims} = {int(np.prod(dims))} values, found {data.size}")
    if kind == "images" and dims[1] != dims[2]:
        raise bad(path, f"holds {dims[1]}x{dims[2]} images; QMU needs square images")
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
        x, y = read_idx(img, "images"), read_idx(lab, "labels")
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
