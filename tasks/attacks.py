"""Attack stages: fit the shadow-model attack, score a model's outputs."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger

from qmu_core import artifacts, attacks
from qmu_core import data as qdata
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import AttackConfig, derive_seed
from tasks._cache import stage


@stage("attack_model")
def fit_attack(shadow_outputs: list[ArtifactRef], splits: ArtifactRef, attack: AttackConfig, seed: int) -> ArtifactRef:
    """Fit the membership classifier on every shadow model's pool records (in vs out)."""
    inputs = {"shadow_outputs": shadow_outputs, "splits": splits, "attack": attack, "seed": seed}
    frame = artifacts.read(splits)
    parts = []
    for ref in shadow_outputs:
        out = artifacts.read(ref)
        which = str(out["model_id"].iloc[0])
        out = out.assign(is_member=qdata.member_mask(frame, which, seed=seed))
        parts.append(out[out["role"] == "shadow_pool"])
    rows = pd.concat(parts, ignore_index=True)
    model, est = attacks.fit_attack(rows, attack, seed=derive_seed(seed, "attack"))
    train_acc = float(((model.score(attacks.attack_features(rows)) > attack.threshold) == rows["is_member"]).mean())
    get_run_logger().info(f"attack ({attack.classifier}) fitted on {len(rows)} shadow records; train acc {train_acc:.3f}")
    out_ref = artifacts.plan("attack_model", inputs, root=splits.root)
    return artifacts.write(model.to_frame(), out_ref, inputs, extra={"shadow_train_acc": train_acc})


@stage("mia_scores")
def score_membership(attack_model: ArtifactRef, outputs: ArtifactRef) -> ArtifactRef:
    """Apply the frozen attack to one model's outputs on every record."""
    inputs = {"attack_model": attack_model, "outputs": outputs}
    model = attacks.AttackModel.from_frame(artifacts.read(attack_model))
    out = artifacts.read(outputs)
    scored = attacks.score_outputs(model, out, members=attacks.true_members(out))
    return artifacts.write(scored, artifacts.plan("mia_scores", inputs, root=outputs.root), inputs)
