from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from qmu_core import artifacts
from qmu_core.config import TrainConfig
from qmu_core.errors import ArtifactError


def _metrics_frame() -> pd.DataFrame:
    return pd.DataFrame({"model_id": ["target"], "phase": ["before"], "metric": ["acc"], "value": [0.5]})


def test_key_depends_on_inputs_not_on_root(tmp_path: Path) -> None:
    a = artifacts.plan("metrics", {"train": TrainConfig(), "seed": 0}, root=tmp_path / "a")
    b = artifacts.plan("metrics", {"train": TrainConfig(), "seed": 0}, root=tmp_path / "b")
    c = artifacts.plan("metrics", {"train": TrainConfig(epochs=2), "seed": 0}, root=tmp_path)
    assert a.key == b.key != c.key
    assert a.key.startswith("metrics-v1-") and len(a.key) == len("metrics-v1-") + 12
    assert a.path == tmp_path / "a" / "metrics" / f"{a.key}.parquet"


def test_upstream_refs_enter_the_key_by_key(tmp_path: Path) -> None:
    up1 = artifacts.ArtifactRef(stage="splits", key="splits-v1-aaa", root=tmp_path / "x")
    up2 = artifacts.ArtifactRef(stage="splits", key="splits-v1-aaa", root=tmp_path / "y")
    up3 = artifacts.ArtifactRef(stage="splits", key="splits-v1-bbb", root=tmp_path / "x")
    k = [artifacts.stage_key("metrics", {"splits": u}) for u in (up1, up2, up3)]
    assert k[0] == k[1] != k[2]


def test_write_read_roundtrip_with_provenance(tmp_path: Path) -> None:
    inputs = {"seed": 3}
    ref = artifacts.write(_metrics_frame(), artifacts.plan("metrics", inputs, root=tmp_path), inputs, extra={"n": 1})
    assert artifacts.read(ref).equals(_metrics_frame())
    meta = artifacts.read_metadata(ref)
    assert meta["inputs"] == {"seed": 3} and meta["extra"] == {"n": 1} and meta["key"] == ref.key
    assert not list(tmp_path.rglob("*.tmp"))


def test_version_bump_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = artifacts.write(_metrics_frame(), artifacts.plan("metrics", {}, root=tmp_path), {})
    monkeypatch.setitem(artifacts.STAGE_VERSIONS, "metrics", 2)
    with pytest.raises(ArtifactError, match="v1, but this code reads 'metrics' v2"):
        artifacts.read(ref)


def test_missing_file_says_how_to_rebuild(tmp_path: Path) -> None:
    ref = artifacts.plan("metrics", {}, root=tmp_path)
    with pytest.raises(ArtifactError, match="--refresh"):
        artifacts.read(ref)


def test_wrong_columns_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="lacks columns"):
        artifacts.write(pd.DataFrame({"x": [1]}), artifacts.plan("metrics", {}, root=tmp_path), {})
