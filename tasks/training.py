"""Model stages: train the target, the retrain oracle and the shadow models; per-record outputs."""

from __future__ import annotations

from qmu_core import workers
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import ModelConfig, TrainConfig
from qmu_core.jobref import Job
from qmu_prefect.log import progress
from tasks._stage import stage


@stage("model", label="train {which}")
def train_model(
    splits: ArtifactRef,
    model: ModelConfig,
    train: TrainConfig,
    classes: tuple[int, ...],
    which: str,
    seed: int,
    trained_with: tuple[str, ...] = (),
) -> Output:
    """Train model `which` (target, oracle, shadow-<i> or ref-<i>) from scratch on its member rows.

    It trains in a worker process (`qmu_core.workers`), so models train side by side on separate cores.
    A reference model given `trained_with` (every reference name of the run; not in the key) trains
    in one model-batched job with its chunk of them (`qmu_core.grouping`).
    """
    report = progress(f"train {which}")
    if trained_with:
        from qmu_core.grouping import GROUPS  # not a module global: a Dask runner pickles this body

        return GROUPS.train(splits, model, train, classes, which=which, group=trained_with, seed=seed, progress=report)
    return workers.run(Job("train_split"), splits, model, train, classes, which=which, seed=seed, progress=report)


@stage("model", label="read the weights trained elsewhere")
def external_model(splits: ArtifactRef, model: ModelConfig, classes: tuple[int, ...], path: str, sha256: str) -> Output:
    """A model trained outside QMU: the weights file at `path` (content `sha256`, in the key), checked against `model`.

    In a worker process (it builds the model, with TensorFlow, to check the names and shapes).
    """
    return workers.run(Job("import_weights_split"), splits, model, classes, path=path, sha256=sha256)


@stage("model", label="retrain {which}")
def retrain_reference(
    splits: ArtifactRef,
    model: ModelConfig,
    train: TrainConfig,
    classes: tuple[int, ...],
    which: str,
    seed: int,
    without: str = "request",
) -> Output:
    """Reference model `which` trained without the deletion request's records of its half (U-LiRA's retrained side).

    Same seeds as `which` itself; in a worker process. `without` is in the key: the other inputs are
    `train_model`'s for `which`, whose artifact this must never be.
    """
    report = progress(f"retrain {which}")
    return workers.run(
        Job("train_split"), splits, model, train, classes, which=which, seed=seed, without_request=True, progress=report
    )


@stage("outputs", label="outputs")
def model_outputs(
    weights: ArtifactRef, splits: ArtifactRef, model: ModelConfig, classes: tuple[int, ...], loss: str
) -> Output:
    """Class probabilities, loss and correctness of one model on every record of the split.

    Computed in a worker process (TensorFlow stays out of the flow's process and its threads).
    """
    return workers.run(Job("outputs_split"), weights, splits, model, classes, loss=loss)
