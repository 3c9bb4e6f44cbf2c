"""What the pipeline's model stages do, on split tables: train, predict outputs, unlearn.

Each function takes DataFrames and configs and returns an `Output` (table + typed facts) for
the stage to write; nothing here knows about Prefect or files.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import ModelConfig, TrainConfig, UnlearnConfig, derive_seed
from qmu_core.membership import member_mask
from qmu_core.progress import Progress
from qmu_core.provenance import ModelFacts
from qmu_core.qnn import training
from qmu_core.qnn.models import QNN
from qmu_core.splits import SplitTable, read_splits
from qmu_core.unlearning import ga

__all__ = ["load_model", "outputs", "train", "train_split", "unlearn"]


def train(
    splits: SplitTable,
    model: ModelConfig,
    train: TrainConfig,
    classes: Sequence[int],
    *,
    which: str,
    seed: int,
    progress: Progress | None = None,
) -> Output:
    """Train model `which` (target, oracle or shadow-<i>) from scratch on its member rows.

    The oracle shares the target's seed: same initial weights and batch order, minus the
    forget set.
    """
    rows = splits.frame[member_mask(splits.frame, which, seed=seed)]
    model_seed = derive_seed(seed, "target" if which == "oracle" else which)
    qnn = training.model_for(model, classes, seed=model_seed, image_side=splits.image_side)
    history = training.fit(
        qnn,
        training.model_inputs(rows, model),
        training.class_index(rows["label"].to_numpy(), classes),
        train,
        seed=derive_seed(model_seed, "batches"),
        progress=progress,
    )
    return Output(qnn.weights_frame(which), ModelFacts(which=which, n_train=len(rows), history=history))


def train_split(
    splits: ArtifactRef,
    model: ModelConfig,
    train_cfg: TrainConfig,
    classes: Sequence[int],
    *,
    which: str,
    seed: int,
    progress: Progress | None = None,
) -> Output:
    """`train` on the split stored at `splits` (what a worker process runs: it reads the table itself)."""
    return train(read_splits(splits), model, train_cfg, classes, which=which, seed=seed, progress=progress)


def load_model(weights: pd.DataFrame, splits: SplitTable, model: ModelConfig, classes: Sequence[int]) -> QNN:
    """Rebuild a trained QNN from its `model` table."""
    qnn = training.model_for(model, classes, seed=0, image_side=splits.image_side)
    return qnn.load_frame(weights)


def outputs(
    weights: pd.DataFrame, splits: SplitTable, model: ModelConfig, classes: Sequence[int], *, loss: str
) -> Output:
    """Class probabilities, loss and correctness of one model on every record of the split."""
    qnn = load_model(weights, splits, model, classes)
    model_id = str(weights["model_id"].iloc[0])
    frame = training.predict_outputs(qnn, splits.frame, model_cfg=model, classes=classes, loss=loss, model_id=model_id)
    return Output(frame)


def unlearn(
    weights: pd.DataFrame,
    splits: SplitTable,
    model: ModelConfig,
    classes: Sequence[int],
    unlearn: UnlearnConfig,
    *,
    loss: str,
    seed: int,
    progress: Progress | None = None,
) -> Output:
    """Make a trained model forget the forget set (``target_train`` rows of the forget class).

    Returns the unlearned weights; ``facts.reached_stop`` says whether the stop rule was met.
    """
    qnn = load_model(weights, splits, model, classes)
    frame = splits.frame
    forget = frame[(frame["role"] == "target_train") & frame["is_forget"]]
    history = ga.gradient_ascent(
        qnn,
        training.model_inputs(forget, model),
        training.class_index(forget["label"].to_numpy(), classes),
        unlearn,
        loss=loss,
        seed=derive_seed(seed, "unlearn", unlearn.method),
        progress=progress,
    )
    model_id = f"unlearned-{unlearn.method}"
    reached = history[-1]["forget_acc"] <= unlearn.stop_forget_acc
    facts = ModelFacts(which=model_id, passes=len(history), reached_stop=reached, history=history)
    warnings = (
        ()
        if reached
        else (
            f"{unlearn.method}: forget-set accuracy is still {history[-1]['forget_acc']:.3f} after "
            f"{len(history)} passes (target <= {unlearn.stop_forget_acc}); the model did not forget. A "
            "saturated model has near-zero loss gradients: set unlearn.objective=complement, or raise "
            "unlearn.learning_rate or unlearn.max_epochs.",
        )
    )
    return Output(qnn.weights_frame(model_id), facts, warnings=warnings)
