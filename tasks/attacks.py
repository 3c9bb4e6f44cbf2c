"""Audit stages: the membership matrix, every attack fitted once and scored on every model."""

from __future__ import annotations

from qmu_core import artifacts, membership
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.attacks.audit import audit
from qmu_core.config import AttackConfig
from qmu_prefect.log import info
from tasks._stage import stage


@stage("membership", label="membership matrix")
def membership_matrix(splits: ArtifactRef, names: tuple[str, ...], seed: int) -> Output:
    """Which reference model trained on which record (models x records, long form)."""
    return Output(membership.membership_matrix(artifacts.read(splits), names, seed=seed))


@stage("mia_scores", label="fit and score attacks")
def audit_models(
    splits: ArtifactRef,
    membership: ArtifactRef,
    reference_outputs: list[ArtifactRef],
    audited: dict[str, ArtifactRef],
    attack: AttackConfig,
    classes: tuple[int, ...],
    seed: int,
) -> Output:
    """Fit every attack on the reference models once; score every audited model's records."""
    refs = [artifacts.read(ref) for ref in reference_outputs]
    models = {phase: artifacts.read(ref) for phase, ref in audited.items()}
    out = audit(artifacts.read(splits), artifacts.read(membership), refs, models, attack, classes, seed=seed)
    info(out.facts.describe() if out.facts else "audit scored")
    return out


@stage("ulira", label="U-LiRA")
def ulira_audit(
    splits: ArtifactRef,
    reference_outputs: dict[str, ArtifactRef],
    unlearned_outputs: dict[str, dict[str, ArtifactRef]],
    retrained_outputs: dict[str, ArtifactRef],
    audited: dict[str, ArtifactRef],
    attack: AttackConfig,
    classes: tuple[int, ...],
    seed: int,
) -> Output:
    """U-LiRA: each audited model's forget records scored between unlearned and retrained reference models."""
    from qmu_core.attacks import ulira

    refs = (reference_outputs, unlearned_outputs, retrained_outputs, audited)
    out = ulira.audit_artifacts(splits, *refs, config=attack, classes=classes, seed=seed)
    info(out.facts.describe() if out.facts else "U-LiRA scored")
    return out
