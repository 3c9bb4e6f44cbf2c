"""The whole audit path without TensorFlow: membership matrix, every attack, metrics, summary.

Synthetic models whose true-class confidence depends on a per-record difficulty plus a shift
when the model trained on the record, so per-record attacks (LiRA, RMIA) must beat the loss
attack, and a model that never saw the audited records must sit at chance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qmu_core import report
from qmu_core.attacks.audit import audit
from qmu_core.config import ATTACK_NAMES, AttackConfig
from qmu_core.membership import member_mask, membership_matrix, reference_names
from qmu_core.provenance import AuditFacts

CLASSES = (0, 1, 2, 3)
ROLES = {"target_train": 300, "target_holdout": 300, "shadow_pool": 400, "test": 40}


def _splits() -> pd.DataFrame:
    roles = np.repeat(list(ROLES), list(ROLES.values()))
    n = len(roles)
    label = np.arange(n) % 4
    return pd.DataFrame({"sample_id": np.arange(n) * 3 + 7, "label": label, "role": roles, "is_forget": label == 1})


def _outputs(splits: pd.DataFrame, model_id: str, member: np.ndarray, seed: int) -> pd.DataFrame:
    n = len(splits)
    difficulty = np.random.default_rng(99).normal(0.0, 2.0, n)  # the same records for every model
    rng = np.random.default_rng(seed)
    stat = difficulty + 1.5 * member + rng.normal(0.0, 0.5, n)
    p_true = 1.0 / (1.0 + np.exp(-stat))
    label = splits["label"].to_numpy()
    probs = np.tile(((1.0 - p_true) / 3.0)[:, None], (1, 4))
    probs[np.arange(n), label] = p_true
    z = np.tanh(np.column_stack([stat, -stat, rng.normal(size=n)]))
    return pd.DataFrame(
        {
            "model_id": model_id,
            "sample_id": splits["sample_id"].to_numpy(),
            "role": splits["role"].to_numpy(),
            "label": label,
            "is_forget": splits["is_forget"].to_numpy(),
            "prob": list(probs.astype(np.float32)),
            "z": list(z.astype(np.float32)),
            "loss": -np.log(p_true),
            "correct": probs.argmax(1) == label,
        }
    )


def _audit(cfg: AttackConfig) -> tuple[pd.DataFrame, AuditFacts, dict]:
    splits = _splits()
    names = reference_names(cfg)
    matrix = membership_matrix(splits, names, seed=0)
    refs = [_outputs(splits, n, member_mask(splits, n, seed=0), seed=i) for i, n in enumerate(names)]
    target = _outputs(splits, "target", member_mask(splits, "target", seed=0), seed=100)
    unseen = _outputs(splits, "oracle", np.zeros(len(splits), bool), seed=101)
    out = audit(splits, matrix, refs, {"before": target, "oracle": unseen}, cfg, CLASSES, seed=0)
    assert isinstance(out.facts, AuditFacts)
    table = report.compare({"before": target, "oracle": unseen}, out.frame, out.facts, headline=cfg.headline)
    return out.frame, out.facts, report.models_summary(table.frame)


def test_population_reference_models_power_every_attack() -> None:
    scores, facts, models = _audit(AttackConfig(n_shadow=16, reference="population", max_iter=200))
    assert facts.not_applicable == {} and set(facts.thresholds) == set(ATTACK_NAMES)
    assert set(scores["role"]) == {"target_train", "target_holdout"}  # only audited records
    before = models["before"]["attacks"]
    assert set(before) == set(ATTACK_NAMES)
    for name in ("lira_online", "lira_offline", "rmia"):
        assert before[name]["auc"] > before["loss"]["auc"] + 0.1, (name, before[name]["auc"], before["loss"]["auc"])
        low, high = before[name]["auc_ci"]
        assert 0.5 < low < before[name]["auc"] < high
    assert before["lira_online"]["auc"] > 0.85
    assert models["before"]["mia_auc"] == before["lira_online"]["auc"]  # the headline attack
    # A model that never trained on the audited records: every attack at chance.
    for name, m in models["oracle"]["attacks"].items():
        assert m["auc_ci"][0] < 0.5 < m["auc_ci"][1], (name, m["auc_ci"])


def test_disjoint_reference_models_run_the_offline_attacks_only() -> None:
    _, facts, models = _audit(AttackConfig(n_shadow=8, reference="disjoint", headline="lira_offline"))
    assert set(facts.not_applicable) == {"lira_online"}
    assert "attack.reference=population" in facts.not_applicable["lira_online"]
    assert models["before"]["attacks"]["lira_offline"]["auc"] > 0.8
    assert "lira_online" not in models["before"]["attacks"]


@pytest.mark.parametrize(
    ("threat_model", "skipped"),
    [("expectations", {"gap", "loss", "rmia"}), ("labels", {"loss"})],
)
def test_threat_models_limit_the_attacks(threat_model: str, skipped: set[str]) -> None:
    cfg = AttackConfig(n_shadow=8, threat_model=threat_model, headline="lira_online")  # type: ignore[arg-type]
    scores, facts, models = _audit(cfg)
    assert set(facts.not_applicable) == skipped and facts.threat_model == threat_model
    assert set(scores["attack"]) == set(ATTACK_NAMES) - skipped
    if threat_model == "expectations":
        assert models["before"]["attacks"]["lira_online"]["auc"] > 0.7


def test_the_paper_protocol_trains_on_the_targets_own_records() -> None:
    _, facts, models = _audit(AttackConfig(n_shadow=4, protocol="paper", headline="paper"))
    assert facts.protocol == "paper" and facts.paper_train_acc is not None
    assert models["before"]["attacks"]["paper"]["auc"] > 0.5
