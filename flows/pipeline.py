"""The main QMU flow: train, attack, unlearn, attack again, compare."""

from __future__ import annotations

import os
import time

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.steps import judge_against_oracle, membership_audit, reference_models, split, train_and_unlearn
from qmu_core import workers
from qmu_core.config import QMUConfig
from qmu_core.presets import preset
from tasks import model_outputs, publish_report

# Stages wait in threads; model training itself runs in worker processes (`qmu_core.workers`,
# one per core by default), so enough threads to keep every worker busy.
WORKERS = max(4, 2 * (os.cpu_count() or 2))


@flow(name="qmu-pipeline", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def qmu_pipeline(config: QMUConfig = preset("default")) -> str:  # noqa: B008 - the form starts from `default`
    """Membership leakage before and after unlearning a deletion request, every method judged
    against the retrain oracle. Returns summary.json's path."""
    started = time.time()
    workers.configure(config.run.workers)
    train = config.train
    common = {"model": config.model, "classes": config.data.classes}

    # Data: members, non-members, the attacker's pool and test records; the deletion request
    # (a class, or a list of sample_ids) marks the forget set.
    base, splits = split(config)

    # Per repeat: the original model A_o on all training records, the oracle A_t retrained without
    # the deletion request, and A_o after each unlearning method (GA, SSD, RGA, SalUn, fine-tune).
    # The attacker's reference models, each on its own random half (the membership matrix).
    # Independent models train side by side in worker processes.
    models = train_and_unlearn(config, base, splits, 0)
    references = reference_models(config, base)
    for repeat in range(1, config.unlearn.seeds):
        models |= train_and_unlearn(config, base, splits, repeat)

    # The audit: every attack fitted once on the reference models' outputs, then the same
    # frozen attacks score every model: before, each method's result and the oracle.
    outputs = {k: model_outputs.submit(weights=w, splits=splits, loss=train.loss, **common) for k, w in models.items()}
    audit = membership_audit(config, splits, references, outputs)

    # Every method against the oracle: accuracies, attacks on the forget set, divergence, cost.
    judged = judge_against_oracle(config, splits, models, outputs, audit)

    refs = {"splits": splits, **references, **audit, **judged, **models, "outputs": outputs}
    return publish_report(artifact_refs=refs, config=config, started=started)
