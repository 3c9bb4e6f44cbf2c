"""Attack stages: fit the shadow-model attack, score a model's outputs."""

from __future__ import annotations

from qmu_core import artifacts
from qmu_core.attacks import paper as attacks
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import AttackConfig
from tasks._log import info
from tasks._stage import stage


@stage("attack_model")
def fit_attack(shadow_outputs: list[ArtifactRef], splits: ArtifactRef, attack: AttackConfig, seed: int) -> Output:
    """Fit the membership classifier on every shadow model's pool records (in vs out)."""
    shadows = [artifacts.read(ref) for ref in shadow_outputs]
    out = attacks.fit_shadow_attack(artifacts.read(splits), shadows, attack, seed=seed)
    info(out.facts.describe() if out.facts else "attack fitted")
    return out


@stage("mia_scores")
def score_membership(attack_model: ArtifactRef, outputs: ArtifactRef) -> Output:
    """Apply the frozen attack to one model's outputs on every record."""
    return attacks.score(artifacts.read(attack_model), artifacts.read(outputs))
