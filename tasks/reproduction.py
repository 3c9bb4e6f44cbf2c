"""The reproduction report: REPRODUCTION.md from the study's runs (`qmu_core.report.reproduction`)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from prefect import task
from prefect.runtime import flow_run

from qmu_core import storage
from qmu_core.config import ReproduceConfig
from qmu_core.report import reproduction
from qmu_prefect.log import info

__all__ = ["publish_reproduction"]


@task(name="publish_reproduction", task_run_name="publish REPRODUCTION.md", cache_policy=None, persist_result=False)
def publish_reproduction(results: Mapping[str, str], config: ReproduceConfig, started: float) -> str:
    """Write REPRODUCTION.md, its data and its figure into the run folder; returns the Markdown's path."""
    name = str(flow_run.get_name() or time.strftime("reproduce-%Y%m%d-%H%M%S"))
    run_dir = storage.local_dir(config.artifact_root) / storage.run_folder(config.artifact_root, name)
    written = reproduction.publish(results, config, run_dir=run_dir, wall_s=time.time() - started)
    info("\n" + written["REPRODUCTION.md"].read_text())
    return str(written["REPRODUCTION.md"])
