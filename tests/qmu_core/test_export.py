"""The export directory's manifest, circuit symbols and model-reference resolution.

That an export recomputes the model's predictions is checked by tests/test_export_recipe.py,
which runs the recipe block of docs/export.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cirq
import pytest

from qmu_core.errors import ArtifactError
from qmu_core.export import export_model, resolve_model_ref
from tests.support import EXPORT_PARAMS, case_id


@pytest.mark.parametrize("kw", EXPORT_PARAMS, ids=case_id)
def test_export_manifest_and_circuit_symbols(tmp_path: Path, kw: dict, trained_model: Callable) -> None:
    ref, _, _ = trained_model(kw)
    manifest_path = export_model(ref, tmp_path / "export")
    manifest = json.loads(manifest_path.read_text())
    circuit = cirq.read_json(json_text=(tmp_path / "export" / "circuit.json").read_text())
    names = {str(s) for s in cirq.parameter_symbols(circuit)}
    assert names == set(manifest["symbols"]["inputs"]) | set(manifest["symbols"]["weights"])
    assert manifest["format"] == "qmu-model/2" and manifest["classes"] == [0, 1, 4, 7]


def test_resolve_model_ref_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not a model artifact"):
        resolve_model_ref(tmp_path / "splits" / "splits-v1-abc.parquet")
