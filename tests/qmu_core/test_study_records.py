"""A study run is reused whole only while its config, data, code and every artifact it used are unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qmu_core import artifacts, study_records
from qmu_core.config import preset


def _weights(seed: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"model_id": ["target"], "variable": ["theta"], "shape": [[2]], "values": [np.float32([0.5, seed])]}
    )


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, str, list[artifacts.ArtifactRef], Path]:
    refs = []
    for seed in (1, 2):
        ref = artifacts.plan("model", {"seed": seed}, root=tmp_path)
        refs.append(artifacts.write_output(artifacts.Output(_weights(seed)), ref, {"seed": seed}, code="c0"))
    result = tmp_path / "runs" / "tiny-run" / "summary.json"
    result.parent.mkdir(parents=True)
    result.write_text(json.dumps({"leak": 0.5}))
    key = study_records.study_key("tiny/shadow", preset("tiny", run={"artifact_root": str(tmp_path)}))
    study_records.write(str(tmp_path), "tiny/shadow", key, str(result), [(r, "c0") for r in refs])
    return tmp_path, key, refs, result


def test_a_recorded_study_is_reused_while_everything_verifies(recorded: tuple) -> None:
    root, key, refs, result = recorded
    found = study_records.find(str(root), key)
    assert found.result == str(result) and found.artifacts == 2, found.why
    record = json.loads((root / study_records.RECORDS / f"{key}.json").read_text())
    assert record["study"] == "tiny/shadow" and record["result"] == "runs/tiny-run/summary.json"
    assert {a["key"] for a in record["artifacts"]} == {r.key for r in refs}


def test_the_key_follows_the_name_the_config_and_the_data(tmp_path: Path) -> None:
    cfg = preset("tiny", run={"artifact_root": str(tmp_path)})
    key = study_records.study_key("tiny/shadow", cfg)
    assert key == study_records.study_key("tiny/shadow", preset("tiny", run={"artifact_root": str(tmp_path)}))
    assert key != study_records.study_key("tiny/paper", cfg)
    assert key != study_records.study_key(
        "tiny/shadow", preset("tiny", run={"artifact_root": str(tmp_path), "seed": 7})
    )
    synthetic = preset("tiny", run={"artifact_root": str(tmp_path)}, data={"dataset": "synthetic"})
    assert key != study_records.study_key("tiny/shadow", synthetic)
    assert len(study_records.source_digest()) == 64


@pytest.mark.parametrize("damage", ["artifact", "seal", "result", "record", "code"])
def test_any_change_makes_the_study_run(recorded: tuple, damage: str) -> None:
    root, key, refs, result = recorded
    record_path = root / study_records.RECORDS / f"{key}.json"
    if damage == "artifact":
        refs[1].path.write_bytes(refs[1].path.read_bytes()[:-8])
        expected = refs[1].key
    elif damage == "seal":
        artifacts.seal_path(refs[0]).unlink()
        expected = refs[0].key
    elif damage == "result":
        result.write_text(json.dumps({"leak": 0.9}))
        expected = "missing or changed"
    elif damage == "record":
        record_path.write_text("{not json")
        expected = "unreadable"
    else:  # the stage's code changed since the artifact was written
        record = json.loads(record_path.read_text())
        record["artifacts"][0]["code"] = "c1"
        record_path.write_text(json.dumps(record))
        expected = "code of its stage changed"
    found = study_records.find(str(root), key)
    assert found.result is None and expected in found.why
    assert study_records.find(str(root), "0" * 16).why.startswith("no earlier run")
