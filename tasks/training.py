"""Model stages: train the target, the retrain oracle and the shadow models; per-record outputs."""

from __future__ import annotations

from qmu_core import artifacts
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import ModelConfig, TrainConfig
from qmu_core.splits import read_splits
from tasks._log import progress
from tasks._stage import stage


@stage("model")
def train_model(
    splits: ArtifactRef, model: ModelConfig, train: TrainConfig, classes: tuple[int, ...], which: str, seed: int
) -> Output:
    """Train model `which` (target, oracle or shadow-<i>) from scratch on its member rows."""
    from qmu_core.qnn import jobs  # TensorFlow loads only when a stage really runs

    return jobs.train(
        read_splits(splits), model, train, classes, which=which, seed=seed, progress=progress(f"train {which}")
    )


@stage("outputs")
def model_outputs(
    weights: ArtifactRef, splits: ArtifactRef, model: ModelConfig, classes: tuple[int, ...], loss: str
) -> Output:
    """Class probabilities, loss and correctness of one model on every record of the split."""
    from qmu_core.qnn import jobs

    return jobs.outputs(artifacts.read(weights), read_splits(splits), model, classes, loss=loss)
