"""Data stage: sample records, split them into roles, reduce features."""

from __future__ import annotations

from pathlib import Path

from qmu_core import splits
from qmu_core.artifacts import Output
from qmu_core.config import DataConfig, FeatureSpec
from tasks._log import info
from tasks._stage import stage


@stage("splits")
def split_data(data: DataConfig, features: FeatureSpec, seed: int, source: str, root: Path) -> Output:
    """Split `data.dataset` into target members/non-members, shadow pool and test records.

    `source` is the data's content fingerprint (`qmu_core.datasets.fingerprint`): it only enters
    the key, so changed input files recompute the split and everything after it.
    """
    out = splits.split_roles(data, features, seed=seed)
    info(out.facts.describe() if out.facts else "split written")
    return out
