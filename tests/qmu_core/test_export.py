"""Exported models predict the same with plain Cirq as the model itself."""

from __future__ import annotations

import json
from pathlib import Path

import cirq
import numpy as np
import pytest

from qmu_core import artifacts, training
from qmu_core import data as qdata
from qmu_core.config import ModelConfig, TrainConfig, preset
from qmu_core.errors import ArtifactError
from qmu_core.export import export_model, predict_with_cirq, resolve_model_ref

CASES = [
    {"n_qubits": 4, "layers": 2},
    {"n_qubits": 4, "layers": 2, "reupload": True},
    {"n_qubits": 4, "layers": 2, "encoding": "amplitude"},
    {"n_qubits": 4, "layers": 1, "kind": "hqnn", "encoding": "amplitude"},
    {"n_qubits": 3, "layers": 1, "kind": "hqnn", "encoding": "angle"},
]


def _trained_model(tmp_path: Path, model: ModelConfig) -> tuple[artifacts.ArtifactRef, np.ndarray, np.ndarray]:
    data = preset("tiny").data
    classes = data.classes
    inputs = {"data": data, "features": model.feature_spec, "seed": 0}
    frame, fmap, facts = qdata.split_roles(data, model.feature_spec, seed=0)
    splits = qdata.write_split(frame, fmap, facts, inputs, root=tmp_path)
    qnn = training.model_for(frame, model, classes, seed=1, image_side=facts["image_side"])
    rows = frame[frame.role == "target_train"]
    training.fit(qnn, training.model_inputs(rows, model), training.class_index(rows.label.to_numpy(), classes),
                 TrainConfig(epochs=1, batch_size=16), seed=0)
    minputs = {"splits": splits, "model": model, "train": TrainConfig(epochs=1), "classes": classes, "which": "target", "seed": 0}
    ref = artifacts.write(qnn.weights_frame("target"), artifacts.plan("model", minputs, root=tmp_path), minputs)
    test = frame[frame.role == "test"].iloc[:4]
    expected = training.predict_proba(qnn, training.model_inputs(test, model))
    pixels01 = (qdata.stack(test["pixels"]) + 1.0) / 2.0
    return ref, pixels01, expected


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_export_predictions_match_the_model(tmp_path: Path, kw: dict) -> None:
    ref, pixels, expected = _trained_model(tmp_path / "art", ModelConfig(**kw))
    manifest_path = export_model(ref, tmp_path / "export")
    got = predict_with_cirq(tmp_path / "export", pixels)
    np.testing.assert_allclose(got, expected, atol=2e-5)
    manifest = json.loads(manifest_path.read_text())
    circuit = cirq.read_json(json_text=(tmp_path / "export" / "circuit.json").read_text())
    names = {str(s) for s in cirq.parameter_symbols(circuit)}
    assert names == set(manifest["symbols"]["inputs"]) | set(manifest["symbols"]["weights"])
    assert manifest["format"] == "qmu-model/1" and manifest["classes"] == [0, 1, 4, 7]


def test_resolve_model_ref_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a model artifact"):
        resolve_model_ref(tmp_path / "splits" / "splits-v1-abc.parquet")
