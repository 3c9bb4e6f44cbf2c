"""Datasets, feature reduction and the split of records into roles.

Roles (the README's vocabulary):

* ``target_train``: target members, the target model's training set;
* ``target_holdout``: target non-members, held out; the attack's negative control;
* ``shadow_pool``: disjoint records the attacker trains shadow models on;
* ``test``: records for retain / forget accuracy.

The forget set is the ``target_train`` rows whose label is ``data.forget_class``.
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qmu_core import artifacts
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import DataConfig, FeatureSpec, derive_seed
from qmu_core.errors import DataError

__all__ = [
    "ROLES",
    "Dataset",
    "FeatureMap",
    "feature_map_ref",
    "load_dataset",
    "member_mask",
    "split_roles",
    "stack",
    "write_split",
]

ROLES = ("target_train", "target_holdout", "shadow_pool", "test")

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
            f"{path} is not a Keras mnist.npz (needs x_train, y_train, x_test, y_test): {exc}."
            f"\n{MNIST_HELP}"
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
        return Dataset(
            (d.images / 16.0).astype(np.float32), d.target.astype(np.int64), "sklearn digits"
        )
    if data.dataset == "mnist":
        return _load_mnist(data.mnist_path)
    return _synthetic(derive_seed(seed, "synthetic"))


@dataclass(frozen=True)
class FeatureMap:
    """Pixels -> circuit inputs: PCA fitted on the target's training records, then scaling.

    Angle encoding: each component is min-max scaled to [0, pi] on the training records (and
    clipped). Amplitude encoding: the components are zero-padded to 2^n; the model normalizes.
    """

    encoding: str
    mean: np.ndarray  # (d,)
    components: np.ndarray  # (k, d)
    lo: np.ndarray  # (k,)
    hi: np.ndarray  # (k,)
    n_out: int

    def transform(self, pixels: np.ndarray) -> np.ndarray:
        """Map flattened pixels (N, d) to features (N, n_out) float32."""
        z = (pixels - self.mean) @ self.components.T
        if self.encoding == "angle":
            span = np.where(self.hi - self.lo > 1e-12, self.hi - self.lo, 1.0)
            z = np.clip((z - self.lo) / span, 0.0, 1.0) * np.pi
        out = np.zeros((len(pixels), self.n_out), dtype=np.float32)
        out[:, : z.shape[1]] = z
        return out

    def to_frame(self) -> pd.DataFrame:
        """Long form for the `feature_map` artifact."""
        rows = [("mean", 0, self.mean), ("lo", 0, self.lo), ("hi", 0, self.hi)]
        rows += [("component", i, c) for i, c in enumerate(self.components)]
        return pd.DataFrame(
            {
                "name": [r[0] for r in rows],
                "row": [r[1] for r in rows],
                "values": [np.asarray(r[2], dtype=np.float64) for r in rows],
            }
        )

    @classmethod
    def fit(cls, pixels: np.ndarray, spec: FeatureSpec) -> FeatureMap:
        """Fit PCA (and the angle scaling) on training pixels (N, d)."""
        from sklearn.decomposition import PCA

        k = min(spec.n_components, pixels.shape[0], pixels.shape[1])
        pca = PCA(n_components=k, svd_solver="full").fit(pixels)
        z = pca.transform(pixels)
        return cls(
            encoding=spec.encoding,
            mean=pca.mean_.astype(np.float64),
            components=pca.components_.astype(np.float64),
            lo=z.min(axis=0),
            hi=z.max(axis=0),
            n_out=spec.n_components,
        )


def split_roles(data: DataConfig, spec: FeatureSpec, *, seed: int) -> tuple[pd.DataFrame, FeatureMap, dict]:
    """Sample records without replacement, assign roles and reduce features.

    Returns:
        ``(splits, feature_map, facts)``: one row per record with columns ``sample_id``,
        ``label``, ``role``, ``is_forget``, ``x`` (features) and ``pixels`` (in [-1, 1]);
        the fitted `FeatureMap`; and provenance facts (source, image side, counts).

    Raises:
        DataError: If the dataset has fewer records of `data.classes` than the split needs.
    """
    ds = load_dataset(data, seed=seed)
    keep = np.flatnonzero(np.isin(ds.labels, data.classes))
    need = data.n_records
    if len(keep) < need:
        raise DataError(
            f"The split needs {need} records (n_target_train + n_target_holdout + n_shadow_pool "
            f"+ n_test) of classes {list(data.classes)}, but {ds.source} has only {len(keep)}. "
            "Lower those counts or use a larger dataset."
        )
    rng = np.random.default_rng(derive_seed(seed, "split"))
    chosen = rng.choice(keep, size=need, replace=False)
    sizes = [data.n_target_train, data.n_target_holdout, data.n_shadow_pool, data.n_test]
    roles = np.repeat(np.array(ROLES), sizes)
    labels = ds.labels[chosen]
    flat = ds.images[chosen].reshape(need, -1)
    train_rows = roles == "target_train"
    if not np.any(labels[train_rows] == data.forget_class):
        raise DataError(
            f"No target_train record has the forget class {data.forget_class}; raise "
            "data.n_target_train or change data.forget_class."
        )
    fmap = FeatureMap.fit(flat[train_rows], spec)
    frame = pd.DataFrame(
        {
            "sample_id": chosen.astype(np.int64),
            "label": labels,
            "role": roles,
            "is_forget": labels == data.forget_class,
            "x": list(fmap.transform(flat)),
            "pixels": list((flat * 2.0 - 1.0).astype(np.float32)),
        }
    )
    facts = {
        "source": ds.source,
        "image_side": ds.side,
        "counts": {r: int(n) for r, n in zip(ROLES, sizes, strict=True)},
        "forget_in_train": int(np.sum(labels[train_rows] == data.forget_class)),
    }
    return frame, fmap, facts


def write_split(
    frame: pd.DataFrame, fmap: FeatureMap, facts: dict, inputs: dict, *, root: Path
) -> ArtifactRef:
    """Write the `feature_map` and `splits` artifacts; the split's provenance names the map."""
    fmap_ref = artifacts.write(fmap.to_frame(), artifacts.plan("feature_map", inputs, root=root), inputs)
    extra = {**facts, "feature_map": fmap_ref.key}
    return artifacts.write(frame, artifacts.plan("splits", inputs, root=root), inputs, extra=extra)


def feature_map_ref(splits: ArtifactRef) -> ArtifactRef:
    """The `feature_map` artifact written together with `splits`."""
    key = artifacts.read_metadata(splits)["extra"]["feature_map"]
    return ArtifactRef(stage="feature_map", key=key, root=splits.root)


def member_mask(splits: pd.DataFrame, which: str, *, seed: int) -> np.ndarray:
    """Boolean mask of the rows a model named `which` trains on.

    * ``target``: all ``target_train`` rows;
    * ``oracle``: ``target_train`` rows outside the forget set (retrain-from-scratch);
    * ``shadow-<i>``: a seeded random half of ``shadow_pool`` (independent per i).
    """
    role = splits["role"].to_numpy()
    if which == "target":
        return role == "target_train"
    if which == "oracle":
        return (role == "target_train") & ~splits["is_forget"].to_numpy()
    if which.startswith("shadow-"):
        pool = np.flatnonzero(role == "shadow_pool")
        rng = np.random.default_rng(derive_seed(seed, "shadow-members", which))
        chosen = rng.choice(pool, size=len(pool) // 2, replace=False)
        mask = np.zeros(len(splits), dtype=bool)
        mask[chosen] = True
        return mask
    raise ValueError(f"Unknown model name {which!r}; use target, oracle or shadow-<i>.")


def stack(column: pd.Series) -> np.ndarray:
    """A list-valued column as a 2-D float32 array."""
    return np.stack(column.to_numpy()).astype(np.float32)
