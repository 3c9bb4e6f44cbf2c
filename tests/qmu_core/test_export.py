"""The export directory's manifest, circuit symbols and model-reference resolution.

That an export recomputes the model's predictions is checked by tests/test_readme_recipe.py,
which runs the README's recipe block.
"""

from __future__ import annotations

import json
from pathlib import Path

import cirq
import pytest

from qmu_core import artifacts
from qmu_core import splits as qsplits
from qmu_core.config import ModelConfig, TrainConfig
from qmu_core.errors import ArtifactError
from qmu_core.export import export_model, resolve_model_ref
from qmu_core.presets import preset
from qmu_core.qnn import training

CASES = [
    {"n_qubits": 4, "layers": 2},
    {"n_qubits": 4, "layers": 2, "reupload": True},
    {"n_qubits": 4, "layers": 2, "encoding": "amplitude"},
    {"n_qubits": 4, "layers": 1, "kind": "hqnn", "encoding": "amplitude"},
    {"n_qubits": 3, "layers": 1, "kind": "hqnn", "encoding": "angle"},
]


def _model_artifact(tmp_path: Path, model: ModelConfig) -> artifacts.ArtifactRef:
    """A freshly initialized model of the tiny preset, written as a `model` artifact."""
    data = preset("tiny").data
    classes = data.classes
    inputs = {"data": data, "features": model.feature_spec, "seed": 0}
    split = qsplits.split_roles(data, model.feature_spec, seed=0)
    splits = artifacts.write_output(split, artifacts.plan("splits", inputs, root=tmp_path), inputs)
    qnn = training.model_for(model, classes, seed=1, image_side=split.facts.image_side)
    minputs = {"splits": splits, "model": model, "train": TrainConfig(epochs=1), "classes": classes, "which": "target", "seed": 0}
    return artifacts.write(qnn.weights_frame("target"), artifacts.plan("model", minputs, root=tmp_path), minputs)


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_export_manifest_and_circuit_symbols(tmp_path: Path, kw: dict) -> None:
    ref = _model_artifact(tmp_path / "art", ModelConfig(**kw))
    manifest_path = export_model(ref, tmp_path / "export")
    manifest = json.loads(manifest_path.read_text())
    circuit = cirq.read_json(json_text=(tmp_path / "export" / "circuit.json").read_text())
    names = {str(s) for s in cirq.parameter_symbols(circuit)}
    assert names == set(manifest["symbols"]["inputs"]) | set(manifest["symbols"]["weights"])
    assert manifest["format"] == "qmu-model/1" and manifest["classes"] == [0, 1, 4, 7]


def test_resolve_model_ref_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a model artifact"):
        resolve_model_ref(tmp_path / "splits" / "splits-v1-abc.parquet")
