"""The main QMU flow: train, attack, unlearn, attack again, compare."""

from __future__ import annotations

import os
import time

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from qmu_core.config import QMUConfig
from qmu_core.datasets import fingerprint
from qmu_core.membership import shadow_names
from tasks import (
    evaluate,
    fit_attack,
    model_outputs,
    publish_report,
    score_membership,
    split_data,
    train_model,
    unlearn,
)

# Independent models train in threads (TF and TFQ release the GIL in their ops); one per core,
# at least two, so a run with many shadow models holds a bounded number of models in memory.
WORKERS = max(2, os.cpu_count() or 2)


@flow(name="qmu-pipeline", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def qmu_pipeline(config: QMUConfig = QMUConfig()) -> str:  # noqa: B008 - pydantic default
    """Membership leakage before and after class-wise unlearning. Returns summary.json's path."""
    started = time.time()
    seed, data, model, train = config.run.seed, config.data, config.model, config.train
    classes, loss = data.classes, train.loss
    common = {"model": model, "classes": classes}

    # Data: members, non-members, the attacker's pool and test records; forget set = class U.
    source = fingerprint(data)  # the input files by content, so changed bytes recompute
    splits = split_data(data=data, features=model.feature_spec, seed=seed, source=source, root=config.run.artifact_root)

    # The original model A_o on all training records, the oracle A_t retrained without U and
    # the attacker's shadow models on halves of the pool: independent, so they run side by side.
    target = train_model.submit(splits=splits, train=train, which="target", seed=seed, **common)
    oracle = train_model.submit(splits=splits, train=train, which="oracle", seed=seed, **common)
    shadows = train_model.map(
        splits=splits, train=train, which=shadow_names(config.attack.n_shadow), seed=seed, **common
    )

    # Unlearning: gradient ascent on U, starting from the target.
    forgotten = unlearn.submit(weights=target, splits=splits, loss=loss, unlearn=config.unlearn, seed=seed, **common)

    # The attack: a classifier on the shadow models' outputs (members vs non-members of the pool).
    shadow_outputs = model_outputs.map(weights=shadows, splits=splits, loss=loss, **common)
    attack = fit_attack(shadow_outputs=shadow_outputs, splits=splits, attack=config.attack, seed=seed)

    # Re-evaluation: the same frozen attack on every model.
    weights = {"before": target, "after_ga": forgotten, "oracle": oracle}
    outputs = {k: model_outputs.submit(weights=w, splits=splits, loss=loss, **common) for k, w in weights.items()}
    scores = {k: score_membership.submit(attack_model=attack, outputs=o) for k, o in outputs.items()}
    metrics = evaluate(outputs=outputs, scores=scores, attack=config.attack)

    refs = {
        "splits": splits,
        "attack_model": attack,
        "metrics": metrics,
        **weights,
        "shadow_models": dict(zip(shadow_names(config.attack.n_shadow), shadows, strict=True)),
        "shadow_outputs": dict(zip(shadow_names(config.attack.n_shadow), shadow_outputs, strict=True)),
        "outputs": outputs,
        "mia_scores": scores,
    }
    return publish_report(artifact_refs=refs, config=config, started=started)
