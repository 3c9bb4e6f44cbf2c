"""The main QMU flow: train, attack, unlearn, attack again, compare."""

from __future__ import annotations

import os
import time

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from qmu_core import workers
from qmu_core.config import QMUConfig
from qmu_core.datasets import fingerprint
from qmu_core.membership import reference_names
from tasks import (
    audit_models,
    evaluate,
    membership_matrix,
    model_outputs,
    publish_report,
    split_data,
    train_model,
    unlearn,
)

# Stages wait in threads; model training itself runs in worker processes (`qmu_core.workers`,
# one per core by default), so enough threads to keep every worker busy.
WORKERS = max(4, 2 * (os.cpu_count() or 2))


@flow(name="qmu-pipeline", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def qmu_pipeline(config: QMUConfig = QMUConfig()) -> str:  # noqa: B008 - pydantic default
    """Membership leakage before and after class-wise unlearning. Returns summary.json's path."""
    started = time.time()
    workers.configure(config.run.workers)
    seed, data, model, train = config.run.seed, config.data, config.model, config.train
    classes, loss = data.classes, train.loss
    common = {"model": model, "classes": classes}
    names = reference_names(config.attack)

    # Data: members, non-members, the attacker's pool and test records; forget set = class U.
    source = fingerprint(data)  # the input files by content, so changed bytes recompute
    splits = split_data(data=data, features=model.feature_spec, seed=seed, source=source, root=config.run.artifact_root)

    # The original model A_o on all training records, the oracle A_t retrained without U and
    # the attacker's reference models, each on its own random half (the membership matrix):
    # independent, so they train side by side in worker processes.
    target = train_model.submit(splits=splits, train=train, which="target", seed=seed, **common)
    oracle = train_model.submit(splits=splits, train=train, which="oracle", seed=seed, **common)
    references = train_model.map(splits=splits, train=train, which=names, seed=seed, **common)
    membership = membership_matrix(splits=splits, names=tuple(names), seed=seed)

    # Unlearning: gradient ascent on U, starting from the target.
    forgotten = unlearn.submit(weights=target, splits=splits, loss=loss, unlearn=config.unlearn, seed=seed, **common)

    # The audit: every attack fitted once on the reference models' outputs, then the same
    # frozen attacks score every model: the target, the unlearned model and the oracle.
    reference_outputs = model_outputs.map(weights=references, splits=splits, loss=loss, **common)
    weights = {"before": target, "after_ga": forgotten, "oracle": oracle}
    outputs = {k: model_outputs.submit(weights=w, splits=splits, loss=loss, **common) for k, w in weights.items()}
    scores = audit_models(
        splits=splits,
        membership=membership,
        reference_outputs=reference_outputs,
        audited=outputs,
        attack=config.attack,
        classes=classes,
        seed=seed,
    )
    metrics = evaluate(outputs=outputs, scores=scores, attack=config.attack)

    refs = {
        "splits": splits,
        "membership": membership,
        "mia_scores": scores,
        "metrics": metrics,
        **weights,
        "reference_models": dict(zip(names, references, strict=True)),
        "reference_outputs": dict(zip(names, reference_outputs, strict=True)),
        "outputs": outputs,
    }
    return publish_report(artifact_refs=refs, config=config, started=started)
