"""The real `tiny` pipeline with the example plug-ins (`examples/reupload_plugin`, installed).

Its model first, then its attack and unlearning method on that model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flows.pipeline import qmu_pipeline
from qmu_cli.root import main
from qmu_core import artifacts, export, frames, plugins
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import ModelConfig, preset
from qmu_core.plugins import MODELS, installed
from qmu_core.splits import read_splits
from tests.support import task_states
from tests.test_export_recipe import recipe_predict, recipe_source

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
    """This module's artifact root: the first run (`first`), which the later tests reuse."""
    return tmp_path_factory.mktemp("plugin-run")


@pytest.fixture(scope="module")
def first(root: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The first run (target, one shadow, GA, oracle): its summary and task states."""
    return _run(root)


def test_tiny_pipeline_trains_audits_and_unlearns_a_plugin_model(
    root: Path, first: tuple[dict[str, Any], dict[str, str]]
) -> None:
    cfg = preset("tiny", model={"kind": PLUGIN}, unlearn={"methods": ["ga"]})
    summary, states = first
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


def test_qmu_export_of_a_plugin_model_reproduces_its_outputs_with_the_recipe(
    root: Path, first: tuple[dict[str, Any], dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary, _ = first
    (run_dir,) = {p.parent for p in root.glob("runs/*/summary.json")}
    assert main(["export", str(run_dir), str(tmp_path / "export")]) == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["model"]["kind"] == PLUGIN and "ansatz" not in manifest["files"]
    assert manifest["symbols"]["inputs"] == [f"x_{i}" for i in range(manifest["n_features"])]

    # QMU's own TFQ outputs of the target on its test records, and the records' pixels
    ref = ArtifactRef(stage="model", key=Path(summary["artifacts"]["before"]).stem, root=root)
    model_id = str(artifacts.read(ref)["model_id"].iloc[0])
    outputs = pd.concat([pd.read_parquet(f) for f in (root / "outputs").glob("*.parquet")])
    tfq = outputs[(outputs["model_id"] == model_id) & (outputs["role"] == "test")].drop_duplicates("sample_id")
    splits = read_splits(ArtifactRef(stage="splits", key=export.model_inputs(ref)["splits"], root=root)).frame
    pixels = splits.set_index("sample_id").loc[tfq["sample_id"], "pixels"]
    pixels01 = (frames.stack(pixels, np.float64) + 1.0) / 2.0  # the splits artifact stores 2p - 1

    # the docs/export.md recipe, in a fresh namespace and without importing the plug-in
    got = recipe_predict()(tmp_path / "export", pixels01)
    expected = frames.stack(tfq["prob"], np.float64)
    assert got.shape == expected.shape and len(got) >= 8
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert "qmu_reupload_plugin" not in recipe_source()


def test_every_unlearning_method_runs_on_the_cached_plugin_run(root: Path) -> None:
    methods = ["ga", "ssd", "rga", "salun", "finetune"]
    summary, states = _run(root, methods=methods, ssd_importance="qfi")  # SSD's QFI of the plug-in circuit
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


def test_a_plugin_model_takes_ssd_with_either_importance() -> None:
    from qmu_core.hardware.evaluate import check_model

    for importance in ("qfi", "fisher"):  # the QFI of a plug-in circuit: qmu_core.unlearning.circuit_qfi
        cfg = preset("tiny", model={"kind": PLUGIN}, unlearn={"methods": ["ssd"], "ssd_importance": importance})
        assert cfg.unlearn.ssd_importance == importance
    check_model(cfg.model)  # the hardware path takes it


def test_qmu_hardware_measures_a_plugin_model_on_qsim(root: Path, first: tuple[dict[str, Any], dict[str, str]]) -> None:
    """The hardware flow on the cached plug-in run: its exact rows are simulation's, its qsim shots near them."""
    from flows.hardware import qmu_hardware

    cfg = preset(
        "tiny",
        run={"artifact_root": str(root)},
        model={"kind": PLUGIN},
        unlearn={"methods": ["ga"], "learning_rate": 0.1},
        attack={"n_shadow": 1},
        hardware={"sampler": {"kind": "qsim"}, "records_per_group": 4, "repetitions": 4000},
    )
    payload = json.loads(Path(qmu_hardware(cfg)).read_text())
    rows = {(r["source"], r["phase"]): r for r in payload["rows"]}
    assert {p for s, p in rows if s == "measured"} == {"before", "after_ga", "oracle"}
    for phase in ("before", "after_ga", "oracle"):
        sim, exact, measured = (rows[(s, phase)] for s in ("simulation", "exact", "measured"))
        for key in ("retain_test_acc", "forget_train_acc", "mia_auc"):
            assert exact[key] == pytest.approx(sim[key], abs=1e-9), (phase, key)  # the same outputs, measured exactly
            assert 0.0 <= measured[key] <= 1.0, (phase, key)
    # the measured outputs: the plug-in's n + 1 read-out values per record, near the simulated ones
    hw = pd.concat([pd.read_parquet(f) for f in (root / "hw_outputs").glob("*.parquet")])
    outputs = pd.concat([pd.read_parquet(f) for f in (root / "outputs").glob("*.parquet")])
    ids = set(pd.concat([pd.read_parquet(f) for f in (root / "hw_records").glob("*.parquet")])["sample_id"])
    before = ArtifactRef(stage="model", key=Path(first[0]["artifacts"]["before"]).stem, root=root)
    target = str(artifacts.read(before)["model_id"].iloc[0])
    pick = {
        name: t[(t["model_id"] == target) & t["sample_id"].isin(ids)]
        .drop_duplicates("sample_id")
        .set_index("sample_id")
        for name, t in (("hw", hw), ("sim", outputs))
    }
    measured_z = frames.stack(pick["hw"]["z"], np.float64)
    exact_z = frames.stack(pick["sim"].loc[pick["hw"].index, "z"], np.float64)
    assert measured_z.shape == exact_z.shape and measured_z.shape[1] == cfg.model.n_qubits + 1
    assert np.max(np.abs(measured_z - exact_z)) < 5 / np.sqrt(4000)  # shot noise: sd <= 1/sqrt(shots)
