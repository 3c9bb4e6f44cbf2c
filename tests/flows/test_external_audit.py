"""`qmu audit --weights`: a model trained by a plain TFQ script (not QMU) audited like QMU's own training of it.

The script (tests/plain_tfq_train.py) trains the example plug-in's circuit on records the test picks,
with QMU's inputs for them (the split's ``x``) and the recipe of the config, and saves the weights by
symbol name. The audit then scores it and QMU's own training (same records, recipe and run.seed)
with the same fitted attacks: their attack numbers must agree within the CI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.external import qmu_audit_external
from qmu_cli.root import main
from qmu_core.config import QMUConfig, preset
from qmu_core.config.form import EVERY_FIELD
from qmu_core.datasets import load_dataset
from qmu_core.external import EXTERNAL, RETRAINED
from qmu_core.plugins import MODELS, installed
from qmu_core.splits import split_roles

PLUGIN = "reupload_ring"
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.usefixtures("prefect_api"),
    pytest.mark.skipif(
        PLUGIN not in installed(MODELS),
        reason="pip install -e examples/reupload_plugin --no-deps (the example model plug-in) first",
    ),
]


def _config(root: Path, members: Path, n: int) -> QMUConfig:
    return preset(
        "tiny",
        run={"artifact_root": str(root)},
        model={"kind": PLUGIN},
        data={"members": str(members), "n_target_train": n},
        attack={"n_shadow": 4},
        train={"epochs": 10},
        unlearn={"methods": ["ga"]},  # nothing unlearns here; the default's SSD needs a built-in ansatz
    )


def members_file(tmp: Path, cfg: QMUConfig) -> tuple[Path, np.ndarray]:
    """120 records of the config's classes, picked by the "user" (not by QMU's split)."""
    labels = load_dataset(cfg.data, seed=0).labels
    pool = np.flatnonzero(np.isin(labels, cfg.data.classes))
    ids = np.random.default_rng(11).choice(pool, size=120, replace=False)
    path = tmp / "members.txt"
    path.write_text("# the records my model trained on\n" + "\n".join(map(str, ids)) + "\n")
    return path, ids


def train_outside(tmp: Path, cfg: QMUConfig) -> Path:
    """The user's plain-TFQ training on QMU's inputs for the members (`qmu split`); returns the weights file."""
    table, weights, config = tmp / "split.parquet", tmp / "weights.npz", tmp / "config.json"
    config.write_text(json.dumps(cfg.model_dump(mode="json", context=EVERY_FIELD)))  # as `qmu config show` writes it
    assert main(["split", "--config", str(config), "--members", str(cfg.data.members), "--out", str(table)]) == 0
    t = cfg.train
    args = [str(c) for c in cfg.data.classes]
    script = [sys.executable, str(ROOT / "tests" / "plain_tfq_train.py"), str(table), str(weights), "--classes", *args]
    cmd = [sys.executable, "-m", "qmu_core.environment", *script]  # TF_USE_LEGACY_KERAS=1 for TFQ's Keras 2 layers
    cmd += ["--qubits", str(cfg.model.n_qubits), "--layers", str(cfg.model.layers), "--epochs", str(t.epochs)]
    cmd += ["--batch-size", str(t.batch_size), "--learning-rate", str(t.learning_rate), "--seed", "5"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return weights


def test_a_model_trained_by_plain_tfq_audits_like_qmus_own_training(tmp_path: Path) -> None:
    members, ids = members_file(tmp_path, preset("tiny"))
    cfg = _config(tmp_path / "root", members, len(ids))
    frame = split_roles(cfg.data, cfg.model.feature_spec, seed=cfg.run.seed).frame
    assert set(frame.loc[frame["role"] == "target_train", "sample_id"]) == set(ids.tolist())
    assert not set(frame.loc[frame["role"] != "target_train", "sample_id"]) & set(ids.tolist())

    weights = train_outside(tmp_path, cfg)
    state = qmu_audit_external(cfg, str(weights), return_state=True)
    assert state.is_completed(), state.message
    summary = json.loads(Path(state.result()).read_text())
    models = summary["models"]

    # `qmu split` gave the script the inputs the audit's own split has
    given = pd.read_parquet(tmp_path / "split.parquet")
    audited = pd.read_parquet(tmp_path / "root" / summary["artifacts"]["splits"])
    assert given["sample_id"].tolist() == audited["sample_id"].tolist()
    np.testing.assert_array_equal(np.stack(given["x"]), np.stack(audited["x"]))
    assert set(models) == {EXTERNAL, RETRAINED}

    shown = ("retain_test_acc", "mia_auc", "mia_auc_ci_low", "mia_auc_ci_high", "mia_forget_auc")
    print({phase: {k: round(models[phase][k], 3) for k in shown} for phase in models})  # shown with -s

    # The model learned something (4 classes: chance 0.25), so the audit is not of noise.
    assert models[EXTERNAL]["retain_test_acc"] > 0.5, models[EXTERNAL]

    # Same attacks, same records: the attack numbers agree within the two CIs.
    for key in ("mia_auc", "mia_forget_auc"):
        a, b = models[EXTERNAL], models[RETRAINED]
        half = sum((m[f"{key}_ci_high"] - m[f"{key}_ci_low"]) / 2 for m in (a, b))
        assert abs(a[key] - b[key]) <= half, (key, a[key], b[key], half)

    # The report says where the model came from and gives the recipe check.
    check = summary["external"]
    assert check["agrees"], check  # the same recipe: within the spread of QMU's own trainings
    assert set(check["accuracies"]) == {"retain_train_acc", "retain_test_acc", "forget_train_acc", "forget_test_acc"}
    for row in check["accuracies"].values():
        assert row["difference"] == pytest.approx(row[EXTERNAL] - row[RETRAINED])
        assert len(row["trainings"]) == 3 and 0 < row["band"] < 1  # QMU trained it with 3 seeds (recipe_seeds)
    report = (Path(state.result()).parent / "report.md").read_text()
    assert "## A model trained outside QMU" in report
    assert weights.name in report and "Recipe check" in report


def test_weights_of_another_architecture_fail_before_any_training(tmp_path: Path) -> None:
    members, ids = members_file(tmp_path, preset("tiny"))
    cfg = _config(tmp_path / "root", members, len(ids))
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, head_w=np.zeros((4, 4)), head_b=np.zeros(4), u_0_0=0.1)  # the head misses the ring read-out
    state = qmu_audit_external(cfg, str(wrong), return_state=True)
    assert state.is_failed()
    message = str(state.message) + str(state.result(raise_on_failure=False))
    assert (
        "does not fit the model" in message and "missing 15" in message and "head_w (4, 4) (expected (5, 4))" in message
    )
    assert not list((tmp_path / "root").glob("model/*.parquet")), "nothing may train for weights that cannot load"


@pytest.mark.slow
def test_a_leaky_model_trained_outside_leaks_as_much_as_qmus_own(tmp_path: Path) -> None:
    """Forty members and sixty epochs: both models memorize; the attacks must see it in both, alike (about 4 min)."""
    base = preset("tiny")
    labels = load_dataset(base.data, seed=0).labels
    ids = np.random.default_rng(11).choice(np.flatnonzero(np.isin(labels, base.data.classes)), 40, replace=False)
    members = tmp_path / "members.txt"
    members.write_text("\n".join(map(str, ids)))
    cfg = preset(
        "tiny",
        run={"artifact_root": str(tmp_path / "root")},
        model={"kind": PLUGIN, "n_qubits": 6, "layers": 3},
        data={"members": str(members), "n_target_train": 40, "n_target_holdout": 40},
        train={"epochs": 60, "learning_rate": 0.05},
        attack={"n_shadow": 8},
        unlearn={"methods": ["ga"]},
    )
    weights = train_outside(tmp_path, cfg)
    state = qmu_audit_external(cfg, str(weights), return_state=True)
    assert state.is_completed(), state.message
    models = json.loads(Path(state.result()).read_text())["models"]
    a, b = models[EXTERNAL], models[RETRAINED]
    assert a["mia_auc_ci_low"] > 0.5 and b["mia_auc_ci_low"] > 0.5, (a, b)  # both leak
    half = (a["mia_auc_ci_high"] - a["mia_auc_ci_low"] + b["mia_auc_ci_high"] - b["mia_auc_ci_low"]) / 2
    assert abs(a["mia_auc"] - b["mia_auc"]) <= half, (a["mia_auc"], b["mia_auc"], half)
