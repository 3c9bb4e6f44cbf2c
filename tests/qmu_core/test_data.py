from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qmu_core import frames, splits
from qmu_core.config import DataConfig, FeatureSpec, preset
from qmu_core.datasets import load_dataset
from qmu_core.errors import DataError
from qmu_core.membership import member_mask


def _split(**kw):
    cfg = preset("tiny").data.model_copy(update=kw)
    out = splits.split_roles(cfg, FeatureSpec(encoding="angle", n_components=4), seed=0)
    return out.frame, out.companions["feature_map"], out.facts


def test_roles_have_the_configured_sizes_and_are_disjoint() -> None:
    frame, fmap, facts = _split()
    cfg = preset("tiny").data
    counts = frame["role"].value_counts().to_dict()
    assert counts == {"target_train": 120, "target_holdout": 60, "shadow_pool": 120, "test": 60}
    assert frame["sample_id"].is_unique
    assert set(frame["label"]) <= set(cfg.classes)
    assert (frame["is_forget"] == (frame["label"] == cfg.forget_class)).all()
    assert facts.forget_in_train == int(frame.query("role == 'target_train'")["is_forget"].sum()) > 0


def test_angle_features_are_angles_and_pixels_are_in_minus1_1() -> None:
    frame, fmap, _ = _split()
    x = frames.stack(frame["x"])
    assert x.shape == (360, 4) and x.min() >= 0 and x.max() <= np.pi + 1e-6
    train = frames.stack(frame.query("role == 'target_train'")["x"])
    # The features are float32: min/max hit 0 and pi up to float32 rounding of values near pi.
    tol = 4 * np.finfo(np.float32).eps * np.pi
    np.testing.assert_allclose(train.min(axis=0), 0, atol=tol)
    np.testing.assert_allclose(train.max(axis=0), np.pi, atol=tol)
    px = frames.stack(frame["pixels"])
    assert px.shape == (360, 64) and px.min() >= -1 and px.max() <= 1


def test_split_is_deterministic_in_the_seed() -> None:
    a, _, _ = _split()
    b, _, _ = _split()
    c = splits.split_roles(preset("tiny").data, FeatureSpec(n_components=4), seed=1).frame
    assert a["sample_id"].tolist() == b["sample_id"].tolist() != c["sample_id"].tolist()


def test_too_small_dataset_says_what_to_lower() -> None:
    with pytest.raises(DataError, match="needs 99999 records"):
        _split(n_test=99999 - 300)


def test_shadow_halves_stay_in_the_pool_and_differ() -> None:
    frame, _, _ = _split()
    m0 = member_mask(frame, "shadow-00", seed=0)
    m1 = member_mask(frame, "shadow-01", seed=0)
    assert m0.sum() == m1.sum() == 60
    assert (frame["role"][m0] == "shadow_pool").all()
    assert (m0 != m1).any()
    oracle = member_mask(frame, "oracle", seed=0)
    assert not frame["is_forget"][oracle].any()
    assert (
        oracle.sum()
        == member_mask(frame, "target", seed=0).sum() - frame.query("role=='target_train'")["is_forget"].sum()
    )


def test_mnist_idx_from_the_shared_directory(mnist_dir: Path) -> None:
    ds = load_dataset(DataConfig(dataset="mnist", mnist_path=str(mnist_dir)))
    assert ds.images.shape == (10000, 28, 28) and ds.labels.shape == (10000,)
    assert ds.images.max() == 1.0 and set(np.unique(ds.labels)) == set(range(10))
    # the first t10k label is a 7 in every MNIST copy
    assert ds.labels[0] == 7


def test_missing_mnist_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data.mnist_path") as err:
        load_dataset(DataConfig(dataset="mnist", mnist_path=str(tmp_path)))
    assert "mnist.npz" in str(err.value) and "digits" in str(err.value)


def test_corrupt_idx_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02")
    with pytest.raises(DataError):
        load_dataset(DataConfig(dataset="mnist", mnist_path=str(tmp_path)))
