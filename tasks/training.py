"""Training stages: target, retrain oracle and shadow models; per-record outputs."""

from __future__ import annotations

import pandas as pd

from qmu_core import artifacts
from qmu_core import data as qdata
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import ModelConfig, TrainConfig, derive_seed
from tasks._cache import stage
from tasks._log import progress


def read_splits(splits: ArtifactRef) -> tuple[pd.DataFrame, int]:
    """The split table and its image side (from the split's provenance)."""
    return artifacts.read(splits), artifacts.read_metadata(splits)["extra"]["image_side"]


def load_model(weights: ArtifactRef, splits: ArtifactRef, model: ModelConfig, classes: tuple[int, ...]):  # noqa: ANN201
    """Rebuild a trained QNN from its weights artifact."""
    from qmu_core import training  # TensorFlow loads only when a stage really runs
    frame, side = read_splits(splits)
    qnn = training.model_for(frame, model, classes, seed=0, image_side=side)
    stored = artifacts.read(weights)
    return qnn.load_frame(stored), frame, str(stored["model_id"].iloc[0])


@stage("model")
def train_model(
    splits: ArtifactRef,
    model: ModelConfig,
    train: TrainConfig,
    classes: tuple[int, ...],
    which: str,
    seed: int,
) -> ArtifactRef:
    """Train model `which` (target, oracle or shadow-<i>) from scratch on its member rows."""
    from qmu_core import training
    inputs = {"splits": splits, "model": model, "train": train, "classes": classes, "which": which, "seed": seed}
    frame, side = read_splits(splits)
    rows = frame[qdata.member_mask(frame, which, seed=seed)]
    # The oracle shares the target's seed: same init and batch order, minus the forget set.
    model_seed = derive_seed(seed, "target" if which == "oracle" else which)
    qnn = training.model_for(frame, model, classes, seed=model_seed, image_side=side)
    history = training.fit(
        qnn,
        training.model_inputs(rows, model),
        training.class_index(rows["label"].to_numpy(), classes),
        train,
        seed=derive_seed(model_seed, "batches"),
        progress=progress(f"train {which} ({len(rows)} records)"),
    )
    out = artifacts.plan("model", inputs, root=splits.root)
    extra = {"which": which, "n_train": len(rows), "history": history}
    return artifacts.write(qnn.weights_frame(which), out, inputs, extra=extra)


@stage("outputs")
def model_outputs(
    weights: ArtifactRef,
    splits: ArtifactRef,
    model: ModelConfig,
    classes: tuple[int, ...],
    loss: str,
) -> ArtifactRef:
    """Class probabilities, loss and correctness of one model on every record of the split."""
    from qmu_core import training
    inputs = {"weights": weights, "splits": splits, "model": model, "classes": classes, "loss": loss}
    qnn, frame, model_id = load_model(weights, splits, model, classes)
    out = training.predict_outputs(qnn, frame, model_cfg=model, classes=classes, loss=loss, model_id=model_id)
    return artifacts.write(out, artifacts.plan("outputs", inputs, root=splits.root), inputs)
