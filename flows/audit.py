"""The audit flow: membership attacks on given models, reusing the cached reference models."""

from __future__ import annotations

import time

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.pipeline import WORKERS
from qmu_core import workers
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import QMUConfig
from qmu_core.datasets import fingerprint
from qmu_core.membership import reference_names
from tasks import audit_models, evaluate, membership_matrix, model_outputs, publish_report, split_data, train_model


@flow(name="qmu-audit", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=WORKERS))
def qmu_audit(config: QMUConfig, models: dict[str, ArtifactRef]) -> str:
    """Audit `models` ({phase: model artifact}) with every attack. Returns summary.json's path."""
    started = time.time()
    workers.configure(config.run.workers)
    seed, data, model, train = config.run.seed, config.data, config.model, config.train
    common = {"model": model, "classes": data.classes}
    names = reference_names(config.attack)

    # The same split and reference models as the run that made the models (cached).
    source = fingerprint(data)
    splits = split_data(data=data, features=model.feature_spec, seed=seed, source=source, root=config.run.artifact_root)
    references = train_model.map(splits=splits, train=train, which=names, seed=seed, **common)
    membership = membership_matrix(splits=splits, names=tuple(names), seed=seed)

    # Every attack fitted once on the references, then scored on each audited model.
    reference_outputs = model_outputs.map(weights=references, splits=splits, loss=train.loss, **common)
    outputs = {k: model_outputs.submit(weights=w, splits=splits, loss=train.loss, **common) for k, w in models.items()}
    scores = audit_models(
        splits=splits,
        membership=membership,
        reference_outputs=reference_outputs,
        audited=outputs,
        attack=config.attack,
        classes=data.classes,
        seed=seed,
    )
    metrics = evaluate(outputs=outputs, scores=scores, attack=config.attack)
    refs = {
        "splits": splits,
        "membership": membership,
        "mia_scores": scores,
        "metrics": metrics,
        **models,
        "reference_models": dict(zip(names, references, strict=True)),
        "outputs": outputs,
    }
    return publish_report(artifact_refs=refs, config=config, started=started)
