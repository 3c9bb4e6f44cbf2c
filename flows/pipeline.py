"""The main QMU flow: train, attack, unlearn, attack again, compare."""

from __future__ import annotations

import os
import time

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.steps import membership_audit, reference_models, split
from qmu_core import workers
from qmu_core.config import QMUConfig
from qmu_core.presets import preset
from tasks import model_outputs, publish_report, train_model, unlearn

# Stages wait in threads; model training itself runs in worker processes (`qmu_core.workers`,
# one per core by default), so enough threads to keep every worker busy.
WORKERS = max(4, 2 * (os.cpu_count() or 2))


@flow(name="qmu-pipeline", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def qmu_pipeline(config: QMUConfig = preset("default")) -> str:  # noqa: B008 - the form starts from `default`
    """Membership leakage before and after class-wise unlearning. Returns summary.json's path."""
    started = time.time()
    workers.configure(config.run.workers)
    seed, train = config.run.seed, config.train
    common = {"model": config.model, "classes": config.data.classes}

    # Data: members, non-members, the attacker's pool and test records; forget set = class U.
    splits = split(config)

    # The original model A_o on all training records, the oracle A_t retrained without U and
    # the attacker's reference models, each on its own random half (the membership matrix):
    # independent, so they train side by side in worker processes.
    target = train_model.submit(splits=splits, train=train, which="target", seed=seed, **common)
    oracle = train_model.submit(splits=splits, train=train, which="oracle", seed=seed, **common)
    references = reference_models(config, splits)

    # Unlearning: gradient ascent on U, starting from the target.
    forgotten = unlearn.submit(
        weights=target, splits=splits, loss=train.loss, unlearn=config.unlearn, seed=seed, **common
    )

    # The audit: every attack fitted once on the reference models' outputs, then the same
    # frozen attacks score every model: the target, the unlearned model and the oracle.
    weights = {"before": target, "after_ga": forgotten, "oracle": oracle}
    outputs = {k: model_outputs.submit(weights=w, splits=splits, loss=train.loss, **common) for k, w in weights.items()}
    audit = membership_audit(config, splits, references, outputs)

    refs = {"splits": splits, **references, **audit, **weights, "outputs": outputs}
    return publish_report(artifact_refs=refs, config=config, started=started)
