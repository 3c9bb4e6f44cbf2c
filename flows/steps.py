"""Steps the flows compose.

The split, the reference models, the membership audit, and the unlearning methods of one
repeat judged against its oracle.
"""

from __future__ import annotations

from typing import Any

from prefect.futures import PrefectFuture

from qmu_core.artifacts import ArtifactRef
from qmu_core.config import QMUConfig, derive_seed
from qmu_core.datasets import fingerprint
from qmu_core.identity import Which
from qmu_core.membership import reference_names
from qmu_core.splits import base_data
from tasks import (
    audit_models,
    compare_unlearning,
    evaluate,
    membership_matrix,
    model_outputs,
    relearn,
    request_split,
    retrain_reference,
    split_data,
    train_model,
    ulira_audit,
    unlearn,
    unlearn_reference,
)

Ref = ArtifactRef | PrefectFuture[ArtifactRef]


def split(config: QMUConfig) -> tuple[ArtifactRef, ArtifactRef]:
    """Members, non-members, the attacker's pool and test records, then the deletion request.

    Returns ``(base, splits)``: the split the target and the reference models train on, and the
    same records with the request's forget set marked (the same ref for a class request). A
    sample request that names records outside the target's training set fails here, before any
    model trains.
    """
    data = config.data
    source = fingerprint(data)  # the input files by content, so changed bytes recompute
    base = split_data(
        data=base_data(data),
        features=config.model.feature_spec,
        seed=config.run.seed,
        source=source,
        root=config.run.artifact_root,
    )
    return base, (base if data.forget == "class" else request_split(splits=base, data=data))


def reference_models(config: QMUConfig, splits: ArtifactRef) -> dict[str, Any]:
    """The attacker's reference models, each on its own random half (submitted, not awaited).

    Also the membership matrix that says which half.
    """
    names = reference_names(config.attack)
    common = {"model": config.model, "classes": config.data.classes, "train": config.train, "seed": config.run.seed}
    models = train_model.map(
        splits=splits, which=names, trained_with=tuple(names), labels=[f"train {n}" for n in names], **common
    )
    membership = membership_matrix(splits=splits, names=tuple(names), seed=config.run.seed)
    return {"membership": membership, "reference_models": dict(zip(names, models, strict=True))}


def membership_audit(
    config: QMUConfig, splits: ArtifactRef, references: dict[str, Any], outputs: dict[str, Ref]
) -> dict[str, Any]:
    """Every attack fitted once on the reference models' outputs; metrics with CIs per attack.

    The same frozen attacks then score every audited model (`outputs`: {phase: outputs}).
    """
    common = {"model": config.model, "classes": config.data.classes, "loss": config.train.loss}
    models = references["reference_models"]
    reference_outputs = model_outputs.map(
        weights=list(models.values()), splits=splits, labels=[f"outputs {n}" for n in models], **common
    )
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


def unlearning_audit(
    config: QMUConfig, splits: ArtifactRef, references: dict[str, Any], audit: dict[str, Any], outputs: dict[str, Ref]
) -> dict[str, Any]:
    """U-LiRA (`qmu_core.attacks.ulira`): is each audited model's forget set unlearned, or retrained?

    The first ``attack.ulira_models`` reference models are unlearned by every method with their own
    request; for a class request they are also retrained without it (a sample request's retrained side
    is the reference models that never drew the record), which are also the null every audited model is
    scored against. Nothing without population reference models.
    """
    n = min(config.attack.ulira_models, config.attack.n_shadow)
    if n == 0 or config.attack.reference != "population":
        return {}
    names = list(references["reference_models"])[:n]
    seed, train = config.run.seed, config.train
    common = {"model": config.model, "classes": config.data.classes}
    look = {"splits": splits, "loss": train.loss, **common}
    unlearned: dict[str, dict[str, Ref]] = {}
    for method in config.unlearn.methods:
        unlearned[method] = {}
        for name in names:
            weights = unlearn_reference.submit(
                weights=references["reference_models"][name],
                splits=splits,
                train=train,
                unlearn=config.unlearn.for_stage(method),
                method=method,
                reference=name,
                seed=seed,
                label=f"unlearn {method} on {name}",
                **common,
            )
            unlearned[method][name] = model_outputs.submit(weights=weights, label=f"outputs {name} {method}", **look)
    retrained: dict[str, Ref] = {}
    if config.data.forget == "class":
        for name in names:
            weights = retrain_reference.submit(
                splits=splits, train=train, which=name, seed=seed, label=f"retrain {name}", **common
            )
            retrained[name] = model_outputs.submit(weights=weights, label=f"outputs {name} retrained", **look)
    ulira = ulira_audit(
        splits=splits,
        reference_outputs={name: audit["reference_outputs"][name] for name in names},
        unlearned_outputs=unlearned,
        retrained_outputs=retrained,
        audited=outputs,
        attack=config.attack,
        classes=config.data.classes,
        seed=seed,
    )
    return {"ulira": ulira}


def repeat_seed(config: QMUConfig, repeat: int) -> int:
    """Seed of repeat `repeat` of the unlearning comparison (repeat 0: ``run.seed`` itself)."""
    return config.run.seed if repeat == 0 else derive_seed(config.run.seed, "repeat", repeat)


def train_and_unlearn(config: QMUConfig, base: ArtifactRef, splits: ArtifactRef, repeat: int) -> dict[str, Ref]:
    """One repeat, by audit phase: the original model, the oracle, and the original model after each method.

    The original model (``before``) trains on the `base` split, so every request of one data config shares
    it; the oracle is retrained without the deletion request; the unlearned models are ``after_<m>``.
    """
    seed, train = repeat_seed(config, repeat), config.train
    common = {"model": config.model, "classes": config.data.classes}
    before, oracle = Which.before(repeat), Which.oracle(repeat)
    suffix = f" {before.tag}" if before.tag else ""  # as the report names repeats: r1/after_ga, ...
    models: dict[str, Ref] = {}
    for which, rows in ((before, base), (oracle, splits)):
        models[which.phase] = train_model.submit(
            splits=rows, train=train, which=which.model_id, seed=seed, label=f"train {which.model_id}{suffix}", **common
        )
    target = models[before.phase]
    for method in config.unlearn.methods:
        models[Which.unlearned(method, repeat).phase] = unlearn.submit(
            weights=target,
            splits=splits,
            train=train,
            unlearn=config.unlearn.for_stage(method),
            method=method,
            seed=seed,
            label=f"unlearn {method}{suffix}",
            **common,
        )
    return models


def judge_against_oracle(
    config: QMUConfig,
    splits: ArtifactRef,
    models: dict[str, Ref],
    outputs: dict[str, Ref],
    audit: dict[str, Any],
    ulira: Ref | None = None,
) -> dict[str, Any]:
    """Relearn time of every unlearned model and oracle, then every method against the oracle (and U-LiRA's AUC)."""
    common = {"model": config.model, "classes": config.data.classes, "train": config.train}
    relearned = {}
    for repeat in range(config.unlearn.seeds):
        before = models[Which.before(repeat).phase]
        for which in (Which.oracle(repeat), *(Which.unlearned(m, repeat) for m in config.unlearn.methods)):
            relearned[which.phase] = relearn.submit(
                weights=models[which.phase],
                before=before,
                splits=splits,
                unlearn=config.unlearn.for_stage("relearn"),
                seed=repeat_seed(config, repeat),
                label=f"relearn {which.title}",
                **common,
            )
    comparison = compare_unlearning(
        metrics=audit["metrics"],
        scores=audit["mia_scores"],
        outputs=outputs,
        models=models,
        relearned=relearned,
        methods=tuple(config.unlearn.methods),
        repeats=config.unlearn.seeds,
        ulira=ulira,
    )
    return {"comparison": comparison, "relearn": relearned}
