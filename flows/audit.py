"""The audit flow: membership attacks on given models, reusing the cached reference models."""

from __future__ import annotations

import time

from prefect import flow

from flows.runner import ConfiguredTaskRunner
from flows.steps import membership_audit, reference_models, split
from flows.ui import show_run, track
from qmu_core import workers
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import QMUConfig
from tasks import model_outputs, publish_report


@flow(name="qmu-audit", log_prints=True, task_runner=ConfiguredTaskRunner())
def qmu_audit(config: QMUConfig, models: dict[str, ArtifactRef]) -> str:
    """Audit `models` ({phase: model artifact}) with every attack. Returns summary.json's path."""
    started = time.time()
    workers.configure(config.run.workers)
    common = {"model": config.model, "classes": config.data.classes, "loss": config.train.loss}

    # The same split and reference models as the run that made the models (cached).
    base, splits = split(config)
    references = reference_models(config, base)
    track(references["reference_models"].values(), "reference models trained")

    # Every attack fitted once on the references, then scored on each audited model.
    outputs = {k: model_outputs.submit(weights=w, splits=splits, **common) for k, w in models.items()}
    audit = membership_audit(config, splits, references, outputs)

    refs = {"splits": splits, **references, **audit, **models, "outputs": outputs}
    return show_run(publish_report(artifact_refs=refs, config=config, started=started))
