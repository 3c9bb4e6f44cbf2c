"""Evaluation stages: compare before / after / oracle, publish the report."""

from __future__ import annotations

import time
from collections.abc import Mapping

from prefect import task
from prefect.runtime import flow_run

from qmu_core import artifacts, report
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import AttackConfig, QMUConfig
from qmu_core.provenance import AuditFacts
from qmu_core.unlearning import compare
from qmu_prefect.log import info
from tasks._stage import stage


@stage("metrics", label="attack metrics")
def evaluate(outputs: dict[str, ArtifactRef], scores: ArtifactRef, attack: AttackConfig) -> Output:
    """Accuracy, and every attack's metrics with CIs, for every phase (before, after_ga, oracle)."""
    audit = artifacts.read_facts(scores, AuditFacts)
    tables = {k: artifacts.read(v) for k, v in outputs.items()}
    return report.compare(tables, artifacts.read(scores), audit, headline=attack.headline)


@task(name="publish_report", task_run_name="publish report", cache_policy=None, persist_result=False)
def publish_report(
    artifact_refs: Mapping[str, ArtifactRef | Mapping[str, ArtifactRef]], config: QMUConfig, started: float
) -> str:
    """Write summary.json, report.md and the plots; log the report.

    Returns the path of ``summary.json``. The flow shows it in the UI (`qmu_prefect.ui.show_run`), so
    the artifacts belong to the flow run, not to this task run.
    """
    run_name = str(flow_run.get_name() or time.strftime("run-%Y%m%d-%H%M%S"))
    published = report.publish(artifact_refs, run_name=run_name, config=config, wall_time_s=time.time() - started)
    info("\n" + published.markdown)
    return str(published.summary_path)


@stage("comparison", label="compare with oracle")
def compare_unlearning(
    metrics: ArtifactRef,
    scores: ArtifactRef,
    outputs: dict[str, ArtifactRef],
    models: dict[str, ArtifactRef],
    relearned: dict[str, ArtifactRef],
    methods: tuple[str, ...],
    repeats: int,
    ulira: ArtifactRef | None = None,
) -> Output:
    """Every unlearning method against the oracle, per repeat (`qmu_core.unlearning.compare`), with U-LiRA if it ran."""
    return compare.compare_artifacts(
        metrics, scores, outputs, models, relearned, methods=methods, repeats=repeats, ulira=ulira
    )
