"""Unlearning stage: gradient ascent on the forget set."""

from __future__ import annotations

from prefect import get_run_logger

from qmu_core import artifacts
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import ModelConfig, UnlearnConfig, derive_seed
from tasks._cache import stage
from tasks._log import progress
from tasks.training import load_model


@stage("model")
def unlearn(
    weights: ArtifactRef,
    splits: ArtifactRef,
    model: ModelConfig,
    classes: tuple[int, ...],
    loss: str,
    unlearn: UnlearnConfig,
    seed: int,
) -> ArtifactRef:
    """Make the trained model forget the forget set; returns the unlearned weights."""
    from qmu_core import training  # TensorFlow loads only when a stage really runs
    inputs = {
        "weights": weights, "splits": splits, "model": model, "classes": classes,
        "loss": loss, "unlearn": unlearn, "seed": seed,
    }
    qnn, frame, _ = load_model(weights, splits, model, classes)
    forget = frame[(frame["role"] == "target_train") & frame["is_forget"]]
    history = training.gradient_ascent(
        qnn,
        training.model_inputs(forget, model),
        training.class_index(forget["label"].to_numpy(), classes),
        unlearn,
        loss=loss,
        seed=derive_seed(seed, "unlearn", unlearn.method),
        progress=progress(f"unlearn {unlearn.method} ({len(forget)} forget records)"),
    )
    model_id = f"unlearned-{unlearn.method}"
    reached = history[-1]["forget_acc"] <= unlearn.stop_forget_acc
    if not reached:
        get_run_logger().warning(
            f"{unlearn.method}: forget-set accuracy is still {history[-1]['forget_acc']:.3f} after "
            f"{len(history)} passes (target <= {unlearn.stop_forget_acc}); the model did not forget. "
            "A saturated model has near-zero loss gradients: raise unlearn.learning_rate or unlearn.max_epochs."
        )
    extra = {"which": model_id, "passes": len(history), "reached_stop": reached, "history": history}
    out = artifacts.plan("model", inputs, root=splits.root)
    return artifacts.write(qnn.weights_frame(model_id), out, inputs, extra=extra)
