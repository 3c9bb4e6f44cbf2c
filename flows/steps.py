"""Steps both flows compose: the split, the reference models, the membership audit."""

from __future__ import annotations

from typing import Any

from prefect.futures import PrefectFuture

from qmu_core.artifacts import ArtifactRef
from qmu_core.config import QMUConfig
from qmu_core.datasets import fingerprint
from qmu_core.membership import reference_names
from tasks import audit_models, evaluate, membership_matrix, model_outputs, split_data, train_model

Ref = ArtifactRef | PrefectFuture[ArtifactRef]


def split(config: QMUConfig) -> ArtifactRef:
    """Members, non-members, the attacker's pool and test records; the forget set is class U."""
    data = config.data
    source = fingerprint(data)  # the input files by content, so changed bytes recompute
    return split_data(
        data=data,
        features=config.model.feature_spec,
        seed=config.run.seed,
        source=source,
        root=config.run.artifact_root,
    )


def reference_models(config: QMUConfig, splits: ArtifactRef) -> dict[str, Any]:
    """The attacker's reference models, each on its own random half (submitted, not awaited),
    and the membership matrix that says which half."""
    names = reference_names(config.attack)
    common = {"model": config.model, "classes": config.data.classes, "train": config.train, "seed": config.run.seed}
    models = train_model.map(splits=splits, which=names, **common)
    membership = membership_matrix(splits=splits, names=tuple(names), seed=config.run.seed)
    return {"membership": membership, "reference_models": dict(zip(names, models, strict=True))}


def membership_audit(
    config: QMUConfig, splits: ArtifactRef, references: dict[str, Any], outputs: dict[str, Ref]
) -> dict[str, Any]:
    """Every attack fitted once on the reference models' outputs, then the same frozen attacks
    score every audited model (`outputs`: {phase: outputs}); metrics with CIs per attack."""
    common = {"model": config.model, "classes": config.data.classes, "loss": config.train.loss}
    models = references["reference_models"]
    reference_outputs = model_outputs.map(weights=list(models.values()), splits=splits, **common)
    scores = audit_models(
        splits=splits,
        membership=references["membership"],
        reference_outputs=reference_outputs,
        audited=outputs,
        attack=config.attack,
        classes=config.data.classes,
        seed=config.run.seed,
    )
    metrics = evaluate(outputs=outputs, scores=scores, attack=config.attack)
    return {
        "mia_scores": scores,
        "metrics": metrics,
        "reference_outputs": dict(zip(models, reference_outputs, strict=True)),
    }
