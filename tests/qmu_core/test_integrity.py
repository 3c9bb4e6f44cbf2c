"""Every reader verifies (issue 25).

A read checks the artifact's seal first, weights, outputs and scores are finite at write and
at read, and a stage never reads an input that does not verify.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from qmu_core import artifacts
from qmu_core.errors import ArtifactError, QMUError, SealError
from qmu_core.provenance import AuditFacts

REMEDY = "does not match its seal; rerun `qmu run` to rebuild it, or restore the file"


def _weights(values: list[float] | None = None) -> pd.DataFrame:
    values = [0.5, -1.25, 2.0] if values is None else values
    return pd.DataFrame(
        {"model_id": ["target"], "variable": ["theta"], "shape": [[len(values)]], "values": [np.float32(values)]}
    )


def _outputs(prob: list[float] | None = None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_id": ["target"],
            "sample_id": [1],
            "role": ["train"],
            "label": [0],
            "is_forget": [False],
            "prob": [np.float32(prob or [0.25, 0.75])],
            "z": [np.float32([0.1, -0.2])],
            "loss": [0.3],
            "correct": [True],
        }
    )


def _scores(score: float = -0.1) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "phase": ["before"],
            "model_id": ["target"],
            "sample_id": [3],
            "role": ["target_train"],
            "is_forget": [False],
            "attack": ["loss"],
            "score": [score],
            "is_member": [True],
        }
    )


def _sealed(tmp_path: Path, stage: str = "model", frame: pd.DataFrame | None = None) -> artifacts.ArtifactRef:
    ref = artifacts.plan(stage, {"seed": 1}, root=tmp_path)
    return artifacts.write_output(artifacts.Output(_weights() if frame is None else frame), ref, {"seed": 1}, code="c0")


def _rewrite(path: Path, frame: pd.DataFrame) -> None:
    """Replace the file's rows, keeping its schema and provenance metadata (a tamperer's edit)."""
    table = pq.read_table(path)
    new = type(table).from_pandas(frame[table.schema.names], schema=table.schema, preserve_index=False)
    pq.write_table(new, path)


def test_a_sealed_artifact_reads_back(tmp_path: Path) -> None:
    ref = _sealed(tmp_path)
    assert artifacts.read(ref)["values"][0].tolist() == [0.5, -1.25, 2.0]
    assert artifacts.check_seal(ref) is None


def test_negated_weights_with_the_old_seal_are_refused_by_every_reader(tmp_path: Path) -> None:
    ref = _sealed(tmp_path)
    _rewrite(ref.path, _weights([-0.5, 1.25, -2.0]))
    assert artifacts.verify(ref, code="c0") is not None  # the run's rebuild path still sees it
    for reader in (artifacts.read, artifacts.read_metadata, lambda r: artifacts.read_facts(r, AuditFacts)):
        with pytest.raises(SealError) as info:
            reader(ref)
        assert str(ref.path) in str(info.value) and REMEDY in str(info.value)
    assert issubclass(SealError, ArtifactError) and issubclass(SealError, QMUError)


def test_a_missing_seal_is_refused(tmp_path: Path) -> None:
    ref = _sealed(tmp_path)
    artifacts.seal_path(ref).unlink()
    with pytest.raises(SealError, match="does not match its seal"):
        artifacts.read(ref)


def test_a_tampered_companion_is_refused(tmp_path: Path) -> None:
    fmap = pd.DataFrame({"name": ["mean"], "row": [0], "values": [[0.5, 0.5]]})
    ref = artifacts.plan("splits", {"seed": 1}, root=tmp_path)
    frame = pd.DataFrame(
        {"sample_id": [1], "label": [0], "role": ["train"], "is_forget": [False], "x": [[0.1]], "pixels": [[0.2]]}
    )
    artifacts.write_output(artifacts.Output(frame, companions={"feature_map": fmap}), ref, {"seed": 1})
    companion = artifacts.companion(ref, "feature_map")
    assert artifacts.read(companion)["name"].tolist() == ["mean"]
    _rewrite(companion.path, fmap.assign(values=[[0.9, 0.9]]))
    with pytest.raises(SealError, match="does not match its seal") as info:
        artifacts.read(companion)
    assert str(companion.path) in str(info.value)
    assert len(artifacts.read(ref)) == 1  # the main file still matches


def test_seal_checks_are_cached_per_file_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = _sealed(tmp_path)
    calls: list[Path] = []
    real = artifacts.sha256_file

    def counting(path: Path, *args: object) -> str:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr("qmu_core.artifacts.seals.sha256_file", counting)
    for _ in range(5):
        artifacts.read(ref)
    assert len(calls) <= 1
    _rewrite(ref.path, _weights([9.0, 9.0, 9.0]))  # new mtime/size: checked again
    with pytest.raises(SealError):
        artifacts.read(ref)


@pytest.mark.parametrize(
    ("stage", "frame", "column"),
    [
        ("model", _weights([1.0, math.nan, 0.0]), "values"),
        ("model", _weights([1.0, math.inf, 0.0]), "values"),
        ("outputs", _outputs([math.nan, 0.5]), "prob"),
        ("mia_scores", _scores(math.nan), "score"),
    ],
)
def test_non_finite_values_are_refused_at_write(tmp_path: Path, stage: str, frame: pd.DataFrame, column: str) -> None:
    ref = artifacts.plan(stage, {"seed": 1}, root=tmp_path)
    with pytest.raises(ArtifactError, match=column) as info:
        artifacts.write_output(artifacts.Output(frame), ref, {"seed": 1})
    assert stage in str(info.value) and ref.key in str(info.value) and "finite" in str(info.value)
    assert not list(tmp_path.rglob("*.parquet")) and not list(tmp_path.rglob("*.seal.json"))


def test_huge_weights_sealed_consistently_are_refused_at_read(tmp_path: Path) -> None:
    """3e38 fits float32; a consistent reseal makes the seal match, the read still refuses the non-finite values.

    Here they are written past the write check.
    """
    ref = _sealed(tmp_path)
    _rewrite(ref.path, _weights([3e38, math.nan, math.inf]))
    artifacts.seal(ref, [ref], code="c0")
    assert artifacts.check_seal(ref) is None
    with pytest.raises(ArtifactError, match="finite") as info:
        artifacts.read(ref)
    assert str(ref.path) in str(info.value)


def test_a_stage_never_reads_an_input_that_does_not_verify(tmp_path: Path) -> None:
    from tasks._stage import Stage

    weights = _sealed(tmp_path)
    _rewrite(weights.path, _weights([-0.5, 1.25, -2.0]))
    called: list[int] = []

    def body(weights: artifacts.ArtifactRef) -> artifacts.Output:
        called.append(1)
        return artifacts.Output(_outputs())

    stage = Stage(body, "outputs")
    with pytest.raises(SealError, match="does not match its seal"):
        stage.task.fn(weights=weights)
    assert not called and not (tmp_path / "outputs").exists()


def test_a_tampered_output_of_the_stage_itself_is_still_rebuilt(tmp_path: Path) -> None:
    from tasks._stage import Stage

    def body(seed: int, root: str) -> artifacts.Output:
        return artifacts.Output(_weights())

    stage = Stage(body, "model")
    ref = stage.task.fn(seed=1, root=str(tmp_path))
    _rewrite(ref.path, _weights([-0.5, 1.25, -2.0]))
    again = stage.task.fn(seed=1, root=str(tmp_path))
    assert again == ref and artifacts.read(ref)["values"][0].tolist() == [0.5, -1.25, 2.0]


def test_seal_records_stay_json(tmp_path: Path) -> None:
    ref = _sealed(tmp_path)
    record = json.loads(artifacts.seal_path(ref).read_text())
    assert record["files"] == {f"model/{ref.key}.parquet": artifacts.sha256_file(ref.path)}
