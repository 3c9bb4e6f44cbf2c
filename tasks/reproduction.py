"""The reproduction report: REPRODUCTION.md from the study's runs (`qmu_core.report.reproduction`)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from prefect import task
from prefect.runtime import flow_run
from prefect.settings import PREFECT_TASKS_REFRESH_CACHE

from qmu_core import storage, study_records
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import QMUConfig, ReproduceConfig
from qmu_core.report import reproduction
from qmu_prefect.log import info

__all__ = ["publish_reproduction", "record_study", "reuse_study"]


@task(name="reuse_study", task_run_name="reuse {name}?", cache_policy=None, persist_result=False)
def reuse_study(name: str, config: QMUConfig) -> str | None:
    """The report JSON of an earlier run of this study if nothing it used changed (`qmu_core.study_records`)."""
    if PREFECT_TASKS_REFRESH_CACHE.value() or not study_records.recordable(config):
        info(f"study {name}: runs (--refresh, or its stages run on Dask)")
        return None
    found = study_records.find(str(config.run.artifact_root), study_records.study_key(name, config))
    info(f"study {name}: {found.why}" + (f", {found.result}" if found.result else "; it runs"))
    return found.result


@task(name="record_study", task_run_name="record {name}", cache_policy=None, persist_result=False)
def record_study(name: str, config: QMUConfig, result: str, used: list[tuple[ArtifactRef, str]]) -> None:
    """Remember a finished study run and the artifacts it used, for the next `reuse_study`."""
    if study_records.recordable(config) and used:
        root = str(config.run.artifact_root)
        path = study_records.write(root, name, study_records.study_key(name, config), result, used)
        info(f"study {name}: recorded {len(used)} artifacts in {path}")


@task(name="publish_reproduction", task_run_name="publish REPRODUCTION.md", cache_policy=None, persist_result=False)
def publish_reproduction(results: Mapping[str, str], config: ReproduceConfig, started: float, reused: list[str]) -> str:
    """Write REPRODUCTION.md, its data and its figure into the run folder; returns the Markdown's path."""
    name = str(flow_run.get_name() or time.strftime("reproduce-%Y%m%d-%H%M%S"))
    run_dir = storage.local_dir(config.artifact_root) / storage.run_folder(config.artifact_root, name)
    wall = time.time() - started
    written = reproduction.publish(results, config, run_dir=run_dir, wall_s=wall, reused=reused)
    info("\n" + written["REPRODUCTION.md"].read_text())
    return str(written["REPRODUCTION.md"])
