"""The main QMU flow: train, attack, unlearn, attack again, compare."""

from __future__ import annotations

import time

from prefect import flow

from qmu_core.config import QMUConfig
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


@flow(name="qmu-pipeline", log_prints=True)
def qmu_pipeline(config: QMUConfig = QMUConfig()) -> str:  # noqa: B008 - pydantic default
    """Membership leakage before and after class-wise unlearning. Returns summary.json's path."""
    started = time.time()
    seed, data, model, train = config.run.seed, config.data, config.model, config.train
    classes, loss = data.classes, train.loss

    # Data: members, non-members, the attacker's pool and test records; forget set = class U.
    splits = split_data(data=data, features=model.feature_spec, seed=seed, root=config.run.artifact_root)

    # The original model A_o on all training records, and the oracle A_t retrained without U.
    target = train_model(splits=splits, model=model, train=train, classes=classes, which="target", seed=seed)
    oracle = train_model(splits=splits, model=model, train=train, classes=classes, which="oracle", seed=seed)

    # The attacker: shadow models on halves of the pool, and a classifier on their outputs.
    shadow_outputs = [
        model_outputs(
            weights=train_model(splits=splits, model=model, train=train, classes=classes, which=f"shadow-{i:02d}", seed=seed),
            splits=splits, model=model, classes=classes, loss=loss,
        )
        for i in range(config.attack.n_shadow)
    ]
    attack = fit_attack(shadow_outputs=shadow_outputs, splits=splits, attack=config.attack, seed=seed)

    # Unlearning: gradient ascent on U.
    forgotten = unlearn(weights=target, splits=splits, model=model, classes=classes, loss=loss, unlearn=config.unlearn, seed=seed)

    # Re-evaluation: the same frozen attack on every model.
    weights = {"before": target, "after_ga": forgotten, "oracle": oracle}
    outputs = {k: model_outputs(weights=w, splits=splits, model=model, classes=classes, loss=loss) for k, w in weights.items()}
    scores = {k: score_membership(attack_model=attack, outputs=o) for k, o in outputs.items()}
    metrics = evaluate(outputs=outputs, scores=scores, attack=config.attack)

    refs = {"splits": splits, "attack_model": attack, "metrics": metrics, **weights}
    return publish_report(metrics=metrics, refs=refs, config=config, started=started)
