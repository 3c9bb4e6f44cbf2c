"""The README's model-export recipe (the ```python block starting `# qmu-export-recipe`) really computes.

The block is extracted from README.md and executed in a fresh namespace; its `predict` must
reproduce the model's own class probabilities for every model kind and encoding.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from qmu_core import artifacts, frames
from qmu_core import splits as qsplits
from qmu_core.config import ModelConfig, TrainConfig
from qmu_core.export import export_model
from qmu_core.presets import preset
from qmu_core.qnn import training

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "# qmu-export-recipe"

CASES = [
    {"n_qubits": 4, "layers": 2},
    {"n_qubits": 4, "layers": 2, "reupload": True},
    {"n_qubits": 4, "layers": 2, "encoding": "amplitude"},
    {"n_qubits": 4, "layers": 1, "kind": "hqnn", "encoding": "amplitude"},
    {"n_qubits": 3, "layers": 1, "kind": "hqnn", "encoding": "angle"},
]


def recipe_source(readme: Path = README) -> str:
    """The body of the fenced ```python block whose first line is `# qmu-export-recipe`."""
    blocks = re.findall(r"^```python\n(.*?)^```\s*$", readme.read_text(), flags=re.S | re.M)
    found = [b for b in blocks if b.splitlines() and b.splitlines()[0].strip() == MARKER]
    assert len(found) == 1, f"README.md needs exactly one ```python block starting with {MARKER!r}; found {len(found)}."
    return found[0]


def recipe_predict():
    """`predict` from the README block, executed in a fresh namespace."""
    namespace: dict = {"__name__": "qmu_readme_recipe"}
    exec(compile(recipe_source(), f"{README}:{MARKER}", "exec"), namespace)  # noqa: S102 - our own README
    return namespace["predict"]


def _trained_model(tmp_path: Path, model: ModelConfig) -> tuple[artifacts.ArtifactRef, np.ndarray, np.ndarray]:
    """A model trained for one epoch on the tiny preset, its test pixels in [0, 1] and its probabilities."""
    data = preset("tiny").data
    classes = data.classes
    inputs = {"data": data, "features": model.feature_spec, "seed": 0}
    split = qsplits.split_roles(data, model.feature_spec, seed=0)
    splits = artifacts.write_output(split, artifacts.plan("splits", inputs, root=tmp_path), inputs)
    frame = split.frame
    qnn = training.model_for(model, classes, seed=1, image_side=split.facts.image_side)
    rows = frame[frame.role == "target_train"]
    training.fit(qnn, training.model_inputs(rows, model), training.class_index(rows.label.to_numpy(), classes),
                 TrainConfig(epochs=1, batch_size=16), seed=0)
    minputs = {"splits": splits, "model": model, "train": TrainConfig(epochs=1), "classes": classes, "which": "target", "seed": 0}
    ref = artifacts.write(qnn.weights_frame("target"), artifacts.plan("model", minputs, root=tmp_path), minputs)
    test = frame[frame.role == "test"].iloc[:4]
    expected = training.predict_proba(qnn, training.model_inputs(test, model))
    pixels01 = (frames.stack(test["pixels"], np.float64) + 1.0) / 2.0  # the splits artifact stores 2p - 1
    return ref, pixels01, expected


def test_readme_has_the_recipe_block() -> None:
    source = recipe_source()
    assert source.strip() != MARKER and "def predict(" in source
    assert callable(recipe_predict())


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_readme_recipe_matches_the_model(tmp_path: Path, kw: dict) -> None:
    ref, pixels01, expected = _trained_model(tmp_path / "art", ModelConfig(**kw))
    export_model(ref, tmp_path / "export")
    got = recipe_predict()(tmp_path / "export", pixels01)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=2e-5)
