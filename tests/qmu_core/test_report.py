"""The report repeats every warning of the run: the config's and every artifact's (cached too)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qmu_core import artifacts, report
from qmu_core.artifacts import Output
from qmu_core.presets import preset


def test_run_warnings_collect_config_and_artifact_warnings(tmp_path: Path) -> None:
    frame = pd.DataFrame({"model_id": ["m"], "phase": ["before"], "attack": [""], "metric": ["acc"], "value": [1.0]})
    ref = artifacts.plan("metrics", {"seed": 1}, root=tmp_path)
    artifacts.write_output(Output(frame, warnings=("3 records have a constant image",)), ref, {"seed": 1})
    assert artifacts.read_metadata(ref).warnings == ["3 records have a constant image"]
    small_pool = preset("tiny", data={"n_shadow_pool": 10}, attack={"reference": "disjoint"})
    found = report.run_warnings(small_pool, {"metrics": ref, "outputs": {"before": ref}})
    assert found[-1] == "3 records have a constant image" and len(found) == 2  # listed once
    assert "reference models" in found[0]
    assert report.run_warnings(preset("tiny"), {"metrics": ref}) == ["3 records have a constant image"]


def test_an_unlearned_model_that_lost_the_retained_classes_is_flagged() -> None:
    models = {
        "before": {"retain_test_acc": 0.90},
        "after_ga": {"retain_test_acc": 0.20},
        "after_ok": {"retain_test_acc": 0.85},
        "oracle": {"retain_test_acc": 0.92},
    }
    (message,) = report.unlearning_warnings(models)
    assert message.startswith("after_ga: retained-test accuracy 0.200 is 0.720 below the oracle's 0.920")
    assert report.unlearning_warnings({"after_ga": {"retain_test_acc": 0.2}}) == []  # no oracle, no verdict
