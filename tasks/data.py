"""Data stage: sample records, split them into roles, reduce features."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger

from qmu_core import data as qdata
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import DataConfig, FeatureSpec
from tasks._cache import stage


@stage("splits")
def split_data(data: DataConfig, features: FeatureSpec, seed: int, root: Path) -> ArtifactRef:
    """Split `data.dataset` into target members/non-members, shadow pool and test records."""
    inputs = {"data": data, "features": features, "seed": seed}
    frame, fmap, facts = qdata.split_roles(data, features, seed=seed)
    get_run_logger().info(
        f"{facts['source']}: {facts['counts']}; forget set = {facts['forget_in_train']} "
        f"target_train records of class {data.forget_class}"
    )
    return qdata.write_split(frame, fmap, facts, inputs, root=root)
