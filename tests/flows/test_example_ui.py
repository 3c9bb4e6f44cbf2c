"""The worked example (examples/reupload_plugin) run as the Prefect UI runs it, on the dataset it ships.

Real `prefect server start`, the `qmu-process` pool, `prefect deploy --name default`, and a
`prefect worker start` subprocess; the run is created with what the `default` deployment's Custom
run form sends when the user changes the model kind to the plug-in, points the data section at the
example's CSV and shrinks the run (both UIs send the same body: the preset plus the changed fields,
tests/qmu_core/config/test_config_form.py). The run must complete through the worker: the plug-in's
circuit trains on the file's records, is audited and unlearned, and the report names the labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from qmu_core import artifacts
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import QMUConfig, preset
from qmu_core.plugins import MODELS, installed
from qmu_core.provenance import SplitFacts
from tests import prefect_procs as pp

PLUGIN = "reupload_ring"

pytestmark = pytest.mark.skipif(
    PLUGIN not in installed(MODELS),
    reason="pip install -e examples/reupload_plugin --no-deps (the example model plug-in) first",
)

RUN_TIMEOUT = 900.0  # s; about 90 s here


def _shipped() -> Path:
    from qmu_reupload_plugin.bars import SHIPPED

    return SHIPPED


def test_the_shipped_dataset_is_what_the_example_makes(tmp_path: Path) -> None:
    from qmu_reupload_plugin.bars import KINDS, make_bars

    made = make_bars(tmp_path / "bars.csv")
    assert made.read_bytes() == _shipped().read_bytes(), "regenerate it: python -m qmu_reupload_plugin.bars <SHIPPED>"
    table = pd.read_csv(made)
    assert sorted(table["label"].unique()) == sorted(KINDS) and len(table) == 600


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, pp.Processes, Path, Path]]:
    """`prefect server start`, the pool, the `default` and `audit-external` deployments and a worker."""
    tmp = tmp_path_factory.mktemp("example-ui")
    with pp.processes() as procs:
        api, env = pp.start_server(procs, tmp / "home")
        pp.create_pool(env)
        pp.deploy(env, "default", "audit-external")
        log = tmp / "worker.log"
        pp.start_worker(procs, env, log)
        yield api, procs, log, tmp


def test_the_default_form_runs_the_example_plugin_on_its_dataset(
    served: tuple[str, pp.Processes, Path, Path],
) -> None:
    api, procs, log, tmp = served
    root = tmp / "artifacts"
    sent: dict[str, Any] = {  # the form's body: the preset, and what the user changed
        "config": {
            "preset": "default",
            "hardware": {"sampler": {"kind": "emulator"}},
            "run": {"artifact_root": str(root)},
            "model": {"kind": PLUGIN, "n_qubits": 4, "layers": 2, "encoding": "angle"},
            "data": {
                "dataset": "file",
                "path": str(_shipped()),
                "classes": [0, 1, 2, 3],
                "forget_class": 2,
                "n_target_train": 120,
                "n_target_holdout": 60,
                "n_shadow_pool": 120,
                "n_test": 60,
            },
            "train": {"epochs": 5, "learning_rate": 0.1, "batch_size": 16},
            "attack": {"n_shadow": 2, "ulira_models": 0},
            "unlearn": {"seeds": 1, "methods": ["ga", "ssd"], "ssd_importance": "fisher"},
        }
    }
    run = pp.wait_final(
        api, pp.create_flow_run(api, "default", sent), procs, log, RUN_TIMEOUT
    )  # the plug-in is a model kind
    assert run["state_type"] == "COMPLETED", f"{run['state']}\n{pp.tail(log)}"

    (path,) = sorted(root.glob(f"runs/{run['name']}/summary.json"))
    summary = json.loads(path.read_text())
    assert summary["config"]["model"]["kind"] == PLUGIN and summary["config"]["data"]["path"] == str(_shipped())
    assert set(summary["models"]) == {"before", "oracle", "after_ga", "after_ssd"}
    assert summary["models"]["before"]["retain_test_acc"] > 0.5  # 3 retained classes: chance is 1/3
    splits = ArtifactRef(stage="splits", key=Path(summary["artifacts"]["splits"]).stem, root=root)
    names = artifacts.read_facts(splits, SplitFacts).label_names  # the text labels, numbered in sorted order
    assert names == {"0": "anti_diagonal", "1": "diagonal", "2": "horizontal", "3": "vertical"}
    report = (path.parent / "report.md").read_text()
    assert "reupload_ring" in report and "file" in report


def test_the_audit_external_form_audits_weights_trained_outside(served: tuple[str, pp.Processes, Path, Path]) -> None:
    """The `audit-external` deployment's Custom run: the form's config (preset + changes) and the weights file."""
    from tests.flows.test_external_audit import members_file, train_outside

    api, procs, log, tmp = served
    members, ids = members_file(tmp, preset("tiny"))
    sent: dict[str, Any] = {
        "config": {
            "preset": "default",
            "hardware": {"sampler": {"kind": "emulator"}},
            "run": {"artifact_root": str(tmp / "external")},
            "model": {"kind": PLUGIN, "n_qubits": 4, "layers": 2, "encoding": "angle"},
            "data": {
                "dataset": "digits",
                "classes": [0, 1, 4, 7],
                "members": str(members),
                "n_target_train": len(ids),
                "n_target_holdout": 60,
                "n_shadow_pool": 120,
                "n_test": 60,
            },
            "train": {"epochs": 5, "learning_rate": 0.1, "batch_size": 16},
            "attack": {"n_shadow": 2, "ulira_models": 0},
            "unlearn": {"seeds": 1, "methods": ["ga"]},
        },
        "recipe_seeds": 2,
    }
    weights = train_outside(tmp, QMUConfig.model_validate(sent["config"]))
    run = pp.wait_final(
        api, pp.create_flow_run(api, "audit-external", {**sent, "weights": str(weights)}), procs, log, RUN_TIMEOUT
    )
    assert run["state_type"] == "COMPLETED", f"{run['state']}\n{pp.tail(log)}"
    (path,) = sorted((tmp / "external").glob(f"runs/{run['name']}/summary.json"))
    summary = json.loads(path.read_text())
    assert set(summary["models"]) == {"external", "qmu_retrained"}
    assert all(len(r["trainings"]) == 2 for r in summary["external"]["accuracies"].values())
    assert "## A model trained outside QMU" in (path.parent / "report.md").read_text()

    # the Quick run (nothing typed): one line saying what to set, nothing trained
    quick = pp.wait_final(api, pp.create_flow_run(api, "audit-external", {}), procs, log, RUN_TIMEOUT)
    assert quick["state_type"] == "FAILED" and "data.members" in quick["state"]["message"], quick["state"]
