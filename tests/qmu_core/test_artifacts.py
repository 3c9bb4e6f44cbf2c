from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from qmu_core import artifacts
from qmu_core.config import TrainConfig
from qmu_core.errors import ArtifactError
from qmu_core.provenance import AuditFacts, SplitFacts


def _metrics_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"model_id": ["target"], "phase": ["before"], "attack": [""], "metric": ["acc"], "value": [0.5]}
    )


def test_key_depends_on_inputs_not_on_root(tmp_path: Path) -> None:
    a = artifacts.plan("metrics", {"train": TrainConfig(), "seed": 0}, root=tmp_path / "a")
    b = artifacts.plan("metrics", {"train": TrainConfig(), "seed": 0}, root=tmp_path / "b")
    c = artifacts.plan("metrics", {"train": TrainConfig(epochs=2), "seed": 0}, root=tmp_path)
    assert a.key == b.key != c.key
    prefix = f"metrics-v{artifacts.STAGE_VERSIONS['metrics']}-"
    assert a.key.startswith(prefix) and len(a.key) == len(prefix) + 12
    assert a.path == tmp_path / "a" / "metrics" / f"{a.key}.parquet"


def test_upstream_refs_enter_the_key_by_key(tmp_path: Path) -> None:
    up1 = artifacts.ArtifactRef(stage="splits", key="splits-v1-aaa", root=tmp_path / "x")
    up2 = artifacts.ArtifactRef(stage="splits", key="splits-v1-aaa", root=tmp_path / "y")
    up3 = artifacts.ArtifactRef(stage="splits", key="splits-v1-bbb", root=tmp_path / "x")
    k = [artifacts.stage_key("metrics", {"splits": u}) for u in (up1, up2, up3)]
    assert k[0] == k[1] != k[2]


def test_write_read_roundtrip_with_provenance(tmp_path: Path) -> None:
    inputs = {"seed": 3}
    ref = artifacts.write(_metrics_frame(), artifacts.plan("metrics", inputs, root=tmp_path), inputs)
    assert artifacts.read(ref).equals(_metrics_frame())
    meta = artifacts.read_metadata(ref)
    assert meta.inputs == {"seed": 3} and meta.facts == {} and meta.key == ref.key and meta.stage == "metrics"
    assert not list(tmp_path.rglob("*.tmp"))


def test_version_bump_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = artifacts.write(_metrics_frame(), artifacts.plan("metrics", {}, root=tmp_path), {})
    v = artifacts.STAGE_VERSIONS["metrics"]
    monkeypatch.setitem(artifacts.STAGE_VERSIONS, "metrics", v + 1)
    with pytest.raises(ArtifactError, match=f"v{v}, but this code reads 'metrics' v{v + 1}"):
        artifacts.read(ref)


def test_missing_file_says_how_to_rebuild(tmp_path: Path) -> None:
    ref = artifacts.plan("metrics", {}, root=tmp_path)
    with pytest.raises(ArtifactError, match="--refresh"):
        artifacts.read(ref)


def test_wrong_columns_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="lacks columns"):
        artifacts.write(pd.DataFrame({"x": [1]}), artifacts.plan("metrics", {}, root=tmp_path), {})


def _scores_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "phase": ["before"],
            "model_id": ["target"],
            "sample_id": [3],
            "role": ["target_train"],
            "is_forget": [False],
            "attack": ["loss"],
            "score": [-0.1],
            "is_member": [True],
        }
    )


def test_facts_are_typed_and_checked_per_stage(tmp_path: Path) -> None:
    facts = AuditFacts(
        threat_model="probs",
        reference="population",
        n_reference=8,
        protocol="shadow",
        thresholds={"loss": -0.25},
        not_applicable={"gap": "why not"},
    )
    frame = pd.DataFrame({"model_id": ["ref-00"], "sample_id": [3], "is_member": [True]})
    ref = artifacts.write(frame, artifacts.plan("membership", {}, root=tmp_path), {})
    ref = artifacts.write(_scores_frame(), artifacts.plan("mia_scores", {}, root=tmp_path), {}, facts=facts)
    assert artifacts.read_facts(ref, AuditFacts) == facts
    with pytest.raises(ArtifactError, match="SplitFacts"):
        artifacts.read_facts(ref, SplitFacts)
    with pytest.raises(ArtifactError, match="records facts of type None"):
        artifacts.write(_metrics_frame(), artifacts.plan("metrics", {}, root=tmp_path), {}, facts=facts)


def test_output_writes_companions_beside_the_main_table(tmp_path: Path) -> None:
    fmap = pd.DataFrame({"name": ["mean"], "row": [0], "values": [[0.5, 0.5]]})
    out = artifacts.Output(_metrics_frame(), companions={"feature_map": fmap})
    ref = artifacts.write_output(out, artifacts.plan("metrics", {"seed": 1}, root=tmp_path), {"seed": 1})
    companion = artifacts.companion(ref, "feature_map")
    back = artifacts.read(companion)
    assert back["name"].tolist() == ["mean"] and back["values"][0].tolist() == [0.5, 0.5]
    assert artifacts.read(ref).equals(_metrics_frame())
    assert artifacts.read_metadata(companion).inputs["companion_of"] == ref.key
