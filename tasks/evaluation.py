"""Evaluation stages: compare before / after / oracle, publish the report."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from qmu_core import artifacts, report
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import AttackConfig, QMUConfig
from tasks._cache import stage


@stage("metrics")
def evaluate(outputs: dict[str, ArtifactRef], scores: dict[str, ArtifactRef], attack: AttackConfig) -> ArtifactRef:
    """Accuracy and membership metrics for every phase (before, after_ga, oracle)."""
    inputs = {"outputs": outputs, "scores": scores, "attack": attack}
    table = report.compare(
        {k: artifacts.read(v) for k, v in outputs.items()},
        {k: artifacts.read(v) for k, v in scores.items()},
        threshold=attack.threshold,
    )
    root = next(iter(outputs.values())).root
    return artifacts.write(table, artifacts.plan("metrics", inputs, root=root), inputs)


def _run_name() -> str:
    name = flow_run.get_name()
    return str(name) if name else time.strftime("run-%Y%m%d-%H%M%S")


@task(name="publish_report", cache_policy=None, persist_result=False)
def publish_report(metrics: ArtifactRef, refs: dict[str, ArtifactRef], config: QMUConfig, started: float) -> str:
    """Write summary.json, report.md and a plot; publish table and Markdown artifacts.

    Returns the path of ``summary.json``.
    """
    table = artifacts.read(metrics)
    models = report.models_summary(table)
    name = _run_name()
    run_dir = Path(metrics.root) / "runs" / name
    title = f"QMU {config.model.kind} ({config.model.encoding}) on {config.data.dataset}: forget class {config.data.forget_class}"
    unlearned = artifacts.read_metadata(refs["after_ga"])["extra"]
    notes = [
        f"- **before**: the target model; **after_ga**: after gradient ascent on the forget set "
        f"({unlearned['passes']} passes); **oracle**: retrained from scratch without the forget set.",
        "- *MIA forget success*: share of forget-set training records the attack calls member "
        "(the paper's headline). *MIA forget control*: the same call rate on held-out records of "
        "the forget class, which were never trained on.",
        "- MIA AUC compares all target members with target non-members.",
    ]
    md = report.markdown(models, title=title, notes=notes)
    plot_path = report.plot(models, run_dir / "comparison.png", title=title)
    (run_dir / "report.md").write_text(md)
    summary = {
        "run": {"name": name, "seed": config.run.seed, "wall_time_s": round(time.time() - started, 2)},
        "config": config.model_dump(mode="json"),
        "models": models,
        "unlearning": {"method": config.unlearn.method, **unlearned},
        "artifacts": {k: str(v.path) for k, v in refs.items()},
        "metrics_parquet": str(metrics.path),
        "report_md": str(run_dir / "report.md"),
        "plot_png": str(plot_path),
    }
    path = report.write_summary(run_dir / "summary.json", summary)
    rows = [{"metric": report.LABELS[k], **{p: models[p].get(k) for p in models}} for k in report.LABELS]
    create_table_artifact(rows, key="qmu-comparison", description=title)
    create_markdown_artifact(md, key="qmu-report", description=title)
    get_run_logger().info("\n" + md)
    return str(path)
