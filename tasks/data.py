"""Data stage: sample records, split them into roles, reduce features."""

from __future__ import annotations

from pathlib import Path

from qmu_core import artifacts
from qmu_core import splits as splits_module
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import DataConfig, FeatureSpec
from qmu_core.splits import feature_map_ref, read_splits
from qmu_prefect.log import info
from tasks._stage import stage


@stage("splits", label="split data")
def split_data(data: DataConfig, features: FeatureSpec, seed: int, source: str, root: Path) -> Output:
    """Split `data.dataset` into target members/non-members, shadow pool and test records.

    `source` is the data's content fingerprint (`qmu_core.datasets.fingerprint`): it only enters
    the key, so changed input files recompute the split and everything after it.
    """
    out = splits_module.split_roles(data, features, seed=seed)
    info(out.facts.describe() if out.facts else "split written")
    return out


@stage("splits", label="deletion request")
def request_split(splits: ArtifactRef, data: DataConfig) -> Output:
    """The split `splits` with the sample deletion request of `data` marked (`is_forget`).

    The records, roles, features and feature map stay those of `splits`.
    """
    table = read_splits(splits)
    base = Output(table.frame, table.facts, companions={"feature_map": artifacts.read(feature_map_ref(splits))})
    out = splits_module.apply_request(base, data)
    info(out.facts.describe() if out.facts else "request marked")
    return out
