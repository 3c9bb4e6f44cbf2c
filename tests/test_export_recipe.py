"""The model-export recipe of docs/export.md (the ```python block starting `# qmu-export-recipe`) really computes.

The block is extracted from docs/export.md and executed in a fresh namespace; its `predict` must
reproduce the model's own class probabilities for every model kind and encoding.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from qmu_core import frames
from qmu_core.config import ModelConfig
from qmu_core.export import export_model
from qmu_core.qnn import training
from tests.support import EXPORT_PARAMS, case_id

EXPORT_MD = Path(__file__).resolve().parents[1] / "docs" / "export.md"
MARKER = "# qmu-export-recipe"


def recipe_source(page: Path = EXPORT_MD) -> str:
    """The body of the fenced ```python block whose first line is `# qmu-export-recipe`."""
    blocks = re.findall(r"^```python\n(.*?)^```\s*$", page.read_text(encoding="utf-8"), flags=re.S | re.M)
    found = [b for b in blocks if b.splitlines() and b.splitlines()[0].strip() == MARKER]
    assert len(found) == 1, f"{page} needs exactly one ```python block starting with {MARKER!r}; found {len(found)}."
    return found[0]


def recipe_predict():
    """`predict` from the docs/export.md block, executed in a fresh namespace."""
    namespace: dict = {"__name__": "qmu_export_recipe"}
    exec(compile(recipe_source(), f"{EXPORT_MD}:{MARKER}", "exec"), namespace)
    return namespace["predict"]


def _trained_model(trained: tuple[Any, Any, Any], model: ModelConfig) -> tuple[object, np.ndarray, np.ndarray]:
    """A model trained for one epoch, four test images in [0, 1] and the model's probabilities on them.

    The model is the session's (`trained_model`).
    """
    ref, table, qnn = trained
    test = table.frame[table.frame.role == "test"].iloc[:4]
    expected = training.predict_proba(qnn, training.model_inputs(test, model))
    pixels01 = (frames.stack(test["pixels"], np.float64) + 1.0) / 2.0  # the splits artifact stores 2p - 1
    return ref, pixels01, expected


def test_export_page_has_the_recipe_block() -> None:
    source = recipe_source()
    assert source.strip() != MARKER and "def predict(" in source
    assert callable(recipe_predict())


@pytest.mark.parametrize("kw", EXPORT_PARAMS, ids=case_id)
def test_export_recipe_matches_the_model(tmp_path: Path, kw: dict, trained_model: Callable) -> None:
    ref, pixels01, expected = _trained_model(trained_model(kw), ModelConfig(**kw))
    export_model(ref, tmp_path / "export")
    got = recipe_predict()(tmp_path / "export", pixels01)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=2e-5)
