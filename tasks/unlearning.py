"""Unlearning stages: make the trained model forget a deletion request; measure relearn time."""

from __future__ import annotations

from qmu_core import unlearning, workers
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import ModelConfig, TrainConfig, UnlearnConfig
from qmu_core.jobref import Job
from qmu_prefect.log import progress
from tasks._stage import stage


@stage("model", label="unlearn {method}")
def unlearn(
    weights: ArtifactRef,
    splits: ArtifactRef,
    model: ModelConfig,
    classes: tuple[int, ...],
    train: TrainConfig,
    unlearn: UnlearnConfig,
    method: str,
    seed: int,
    revision: int = unlearning.REVISION,
) -> Output:
    """Unlearn the split's forget set from `weights` with `method`, in a worker process.

    `revision` (`qmu_core.unlearning.REVISION`) enters the key, so a changed method recomputes.
    """
    report = progress(f"unlearn {method}")
    return workers.run(
        Job("unlearn_split"), weights, splits, model, classes, unlearn, train, method=method, seed=seed, progress=report
    )


@stage("model", label="unlearn {method} on {reference}")
def unlearn_reference(
    weights: ArtifactRef,
    splits: ArtifactRef,
    model: ModelConfig,
    classes: tuple[int, ...],
    train: TrainConfig,
    unlearn: UnlearnConfig,
    method: str,
    reference: str,
    seed: int,
    revision: int = unlearning.REVISION,
) -> Output:
    """Reference model `reference` after `method` with its own deletion request (U-LiRA's unlearned side).

    Its request: the records of its half (drawn with the root `seed`) that the run's request
    deletes (`qmu_core.jobs.deletion_request`). In a worker process.
    """
    report = progress(f"unlearn {method} on {reference}")
    args = (weights, splits, model, classes, unlearn, train)
    return workers.run(
        Job("unlearn_split"),
        *args,
        method=method,
        seed=seed,
        trained_on=reference,
        membership_seed=seed,
        progress=report,
    )


@stage("relearn", label="relearn")
def relearn(
    weights: ArtifactRef,
    before: ArtifactRef,
    splits: ArtifactRef,
    model: ModelConfig,
    classes: tuple[int, ...],
    train: TrainConfig,
    unlearn: UnlearnConfig,
    seed: int,
) -> Output:
    """Fine-tuning steps on the forget set until `weights` regains the forget accuracy of `before`."""
    return workers.run(Job("relearn_split"), weights, before, splits, model, classes, unlearn, train, seed=seed)
