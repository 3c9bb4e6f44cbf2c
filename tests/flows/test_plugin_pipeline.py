"""The real `tiny` pipeline with the example plug-ins (`examples/reupload_plugin`, installed).

Its model first, then its attack and unlearning method on that model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from flows.pipeline import qmu_pipeline
from qmu_core import artifacts, export, frames, plugins
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import ModelConfig, preset
from qmu_core.errors import ConfigError
from qmu_core.plugins import MODELS, installed
from tests.support import task_states

PLUGIN = "reupload_ring"
ATTACK = "margin"
METHOD = "random_label"

pytestmark = [
    pytest.mark.usefixtures("prefect_api"),
    pytest.mark.skipif(
        PLUGIN not in installed(MODELS)
        or ATTACK not in installed(plugins.ATTACKS)
        or METHOD not in installed(plugins.UNLEARNING),
        reason="pip install -e examples/reupload_plugin --no-deps (the example plug-ins) first",
    ),
]


def _run(root: Path, attack: dict[str, Any] | None = None, **unlearn: Any) -> tuple[dict[str, Any], dict[str, str]]:
    cfg = preset(
        "tiny",
        run={"artifact_root": str(root)},
        model={"kind": PLUGIN},
        unlearn={"methods": ["ga"], "learning_rate": 0.1, **unlearn},  # tiny's 0.5: every GA step fails the guard
        attack={"n_shadow": 1, **(attack or {})},
    )
    state = qmu_pipeline(cfg, return_state=True)
    assert state.is_completed(), state.message
    summary = json.loads(Path(state.result()).read_text())
    m, n = len(cfg.unlearn.methods), cfg.attack.n_shadow
    return summary, task_states(state.state_details.flow_run_id, 11 + 3 * m + 2 * n)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's artifact root: the first test's run, which the second reuses."""
    return tmp_path_factory.mktemp("plugin-run")


def test_tiny_pipeline_trains_audits_and_unlearns_a_plugin_model(root: Path) -> None:
    cfg = preset("tiny", model={"kind": PLUGIN}, unlearn={"methods": ["ga"]})
    summary, states = _run(root)
    assert all(s == "Completed" for s in states.values()), states

    assert set(summary["models"]) == {"before", "after_ga", "oracle"}
    for phase in ("before", "after_ga", "oracle"):
        for key in ("retain_test_acc", "forget_test_acc", "mia_auc"):
            value = summary["models"][phase][key]
            assert isinstance(value, float) and 0.0 <= value <= 1.0, (phase, key, value)
    before, after = summary["models"]["before"], summary["models"]["after_ga"]
    assert before["retain_test_acc"] > 0.3  # trained beyond chance (4 classes)
    # GA forgets part of the class (0.82 -> 0.57 here) before the retained-accuracy guard stops it
    assert after["forget_train_acc"] < before["forget_train_acc"] - 0.1

    # the head reads the plug-in's read-out: n_qubits <Z_i> plus its ring correlation
    weights = pd.read_parquet(root / summary["artifacts"]["before"])
    arrays = frames.arrays(weights)
    n_out = cfg.model.n_qubits + 1
    assert arrays["head_w"].shape[0] == n_out
    assert arrays["theta"].shape == (2 * cfg.model.n_qubits * cfg.model.layers,)
    outputs = pd.concat([pd.read_parquet(f) for f in (root / "outputs").glob("*.parquet")])
    assert {len(z) for z in outputs["z"]} == {n_out}

    # the model artifact records the plug-in's name (never a module path) in its config
    ref = ArtifactRef(stage="model", key=Path(summary["artifacts"]["before"]).stem, root=root)
    inputs = export.model_inputs(ref)
    assert inputs["model_plugin"] == plugins.fingerprint(cfg.model)  # the circuit it was trained with, in its key
    recorded = inputs["model"]
    assert recorded["kind"] == PLUGIN and ModelConfig.model_validate(recorded).is_plugin
    with pytest.raises(ConfigError, match="export recipe describes QMU's own circuits only"):
        export.export_model(ref, root / "export")


def test_every_unlearning_method_but_ssds_qfi_runs_on_the_cached_plugin_run(root: Path) -> None:
    methods = ["ga", "ssd", "rga", "salun", "finetune"]
    summary, states = _run(root, methods=methods, ssd_importance="fisher")
    trained = {k: v for k, v in states.items() if k.startswith("train ")}
    assert trained and set(trained.values()) == {"Cached"}, trained  # target, shadow, oracle reused
    assert set(summary["models"]) == {"before", "oracle", *(f"after_{m}" for m in methods)}
    for m in methods:
        assert 0.0 <= summary["models"][f"after_{m}"]["mia_auc"] <= 1.0, m
        assert summary["models"][f"after_{m}"]["circuit_evals"] > 0, m


def test_an_attack_and_an_unlearning_plugin_run_like_the_built_ins(root: Path) -> None:
    """The example's `margin` attack and `random_label` method on the cached plug-in model; keys hold their identity."""
    summary, states = _run(root, attack={"plugins": [ATTACK], "headline": ATTACK}, methods=[METHOD])
    assert all(s in ("Completed", "Cached") for s in states.values()), states
    trained = {k: v for k, v in states.items() if k.startswith("train ")}
    assert trained and set(trained.values()) == {"Cached"}, trained  # a new attack and method retrain nothing
    assert states[f"unlearn {METHOD}"] == "Completed", states

    assert set(summary["models"]) == {"before", "oracle", f"after_{METHOD}"}
    before, after = summary["models"]["before"], summary["models"][f"after_{METHOD}"]
    assert after["circuit_evals"] > 0
    assert after["forget_train_acc"] < before["forget_train_acc"]  # random labels on U moved it away from U
    for phase in ("before", "oracle", f"after_{METHOD}"):
        assert 0.0 <= summary["models"][phase]["mia_auc"] <= 1.0, phase
        assert ATTACK in summary["models"][phase]["attacks"], summary["models"][phase]["attacks"].keys()
        assert "lira_online" in summary["models"][phase]["attacks"]  # the built-ins still run beside it
    assert summary["config"]["attack"]["plugins"] == [ATTACK]

    # the unlearned model's key holds the method plug-in's identity, the audit's the attack plug-in's
    ref = ArtifactRef(stage="model", key=Path(summary["artifacts"][f"after_{METHOD}"]).stem, root=root)
    inputs = export.model_inputs(ref)
    assert inputs["method_plugin"] == plugins.identity(plugins.UNLEARNING, METHOD) and inputs["method"] == METHOD
    mia = ArtifactRef(stage="mia_scores", key=Path(summary["artifacts"]["mia_scores"]).stem, root=root)
    assert artifacts.read_metadata(mia).inputs["attack_plugins"] == {ATTACK: plugins.identity(plugins.ATTACKS, ATTACK)}


def test_a_plugin_model_refuses_ssd_qfi_and_the_hardware_path() -> None:
    from qmu_core.hardware.evaluate import check_model

    with pytest.raises(ConfigError, match="needs QMU's own ansatz"):
        preset("tiny", model={"kind": PLUGIN}, unlearn={"methods": ["ssd"], "ssd_importance": "qfi"})
    cfg = preset("tiny", model={"kind": PLUGIN}, unlearn={"methods": ["ssd"], "ssd_importance": "fisher"})
    with pytest.raises(ConfigError, match="hardware path compiles and measures QMU's own circuit only"):
        check_model(cfg.model)
