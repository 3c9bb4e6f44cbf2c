"""Unlearning stage: make the trained model forget the forget set."""

from __future__ import annotations

from qmu_core import artifacts
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import ModelConfig, UnlearnConfig
from qmu_core.splits import read_splits
from tasks._log import progress
from tasks._stage import stage


@stage("model")
def unlearn(
    weights: ArtifactRef,
    splits: ArtifactRef,
    model: ModelConfig,
    classes: tuple[int, ...],
    loss: str,
    unlearn: UnlearnConfig,
    seed: int,
) -> Output:
    """Unlearn with `unlearn.method`; returns the unlearned weights."""
    from qmu_core.qnn import jobs  # TensorFlow loads only when a stage really runs

    report = progress(f"unlearn {unlearn.method}")
    weights_table, table = artifacts.read(weights), read_splits(splits)
    return jobs.unlearn(weights_table, table, model, classes, unlearn, loss=loss, seed=seed, progress=report)
