"""The main QMU flow: train, attack, unlearn, attack again, compare."""

from __future__ import annotations

import time

from flows.steps import (
    judge_against_oracle,
    membership_audit,
    reference_models,
    split,
    train_and_unlearn,
    unlearning_audit,
)
from qmu_core import housekeeping, workers
from qmu_core.config import QMUConfig, preset
from qmu_prefect.flow import qmu_flow
from qmu_prefect.runs import run_name
from qmu_prefect.ui import show_run, track
from tasks import model_outputs, publish_report


@qmu_flow("qmu-pipeline", flow_run_name=run_name())
def qmu_pipeline(config: QMUConfig = preset("default")) -> str:  # noqa: B008 - the form starts from `default`
    """Membership leakage before and after unlearning a deletion request.

    Every method is judged against the retrain oracle. Returns summary.json's path.
    """
    started = time.time()
    with housekeeping.live_run(config.run.artifact_root):  # `qmu artifacts gc` waits for the run
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
        track(references["reference_models"].values(), "reference models trained")
        for repeat in range(1, config.unlearn.seeds):
            models |= train_and_unlearn(config, base, splits, repeat)

        # The audit: every attack fitted once on the reference models' outputs, then the same
        # frozen attacks score every model: before, each method's result and the oracle.
        outputs = {
            k: model_outputs.submit(weights=w, splits=splits, loss=train.loss, label=f"outputs {k}", **common)
            for k, w in models.items()
        }
        audit = membership_audit(config, splits, references, outputs)

        # U-LiRA: reference models unlearned by every method, and retrained without the request, tell
        # per forget record whether each audited model looks unlearned or retrained.
        ulira = unlearning_audit(config, splits, references, audit, outputs)

        # Every method against the oracle: accuracies, attacks on the forget set, U-LiRA, divergence, cost.
        judged = judge_against_oracle(config, splits, models, outputs, audit, ulira.get("ulira"))

        refs = {"splits": splits, **references, **audit, **ulira, **judged, **models, "outputs": outputs}
        return show_run(publish_report(artifact_refs=refs, config=config, started=started))
