"""Training, prediction and gradient-ascent unlearning loops for `qmu_core.qnn.models.QNN`.

All randomness comes from the `seed` argument; nothing calls global NumPy random state.
Long loops report progress through an optional ``progress(epoch, epochs, metrics)`` callback.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from qmu_core import frames
from qmu_core._tf import tf, tf_keras
from qmu_core.config import ModelConfig, TrainConfig
from qmu_core.frames import class_index
from qmu_core.progress import Progress
from qmu_core.qnn.frontend import model_front_end
from qmu_core.qnn.models import QNN, build_model

__all__ = [
    "batches",
    "class_index",
    "fit",
    "model_for",
    "model_inputs",
    "optimizer",
    "per_record_loss",
    "predict_outputs",
    "predict_proba",
]

_EPS = 1e-7


def per_record_loss(probs: tf.Tensor, y: tf.Tensor, kind: str) -> tf.Tensor:
    """Loss per record, shape (B,).

    ``bce_sum``: sum over classes of binary cross-entropy on the softmax outputs (the paper's
    basic QNN); ``cross_entropy``: ``-log p[y]``.
    """
    p = tf.clip_by_value(probs, _EPS, 1.0 - _EPS)
    onehot = tf.one_hot(y, tf.shape(p)[1], dtype=p.dtype)
    if kind == "bce_sum":
        return -tf.reduce_sum(onehot * tf.math.log(p) + (1.0 - onehot) * tf.math.log(1.0 - p), axis=1)
    return -tf.reduce_sum(onehot * tf.math.log(p), axis=1)


def _optimizer(kind: str, lr: float, momentum: float) -> tf_keras.optimizers.Optimizer:
    if kind == "adam":
        return tf_keras.optimizers.Adam(learning_rate=lr)
    return tf_keras.optimizers.SGD(learning_rate=lr, momentum=momentum, nesterov=kind == "nesterov")


def optimizer(train: TrainConfig) -> tf_keras.optimizers.Optimizer:
    """A fresh optimizer of the train section's kind, step size and momentum."""
    return _optimizer(train.optimizer, train.learning_rate, train.momentum)


def model_inputs(splits: pd.DataFrame, model: ModelConfig) -> np.ndarray:
    """The array a model reads: reduced features (basic QNN) or pixels (HQNN)."""
    return frames.stack(splits[model_front_end(model).column])


def model_for(model: ModelConfig, classes: Sequence[int], *, seed: int, image_side: int) -> QNN:
    """A freshly initialized model with one output per class."""
    return build_model(model, n_classes=len(classes), image_side=image_side, seed=seed)


def batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The indices ``0 .. n-1`` in a random order from `rng`, in batches of `batch_size` (the last may be short)."""
    order = rng.permutation(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def predict_proba(model: QNN, x: np.ndarray, *, batch_size: int = 500) -> np.ndarray:
    """Class probabilities (N, n_classes) as float32."""
    out = [model.predict_probs(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.n_classes), np.float32)


def predict_expectations(model: QNN, x: np.ndarray, *, batch_size: int = 500) -> np.ndarray:
    """What the head reads per record (N, n_outputs) as float32: ⟨Z⟩ per qubit, or a plug-in's read-out."""
    out = [model.predict_expectations(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, model.backend.n_outputs), np.float32)


def fit(
    model: QNN,
    x: np.ndarray,
    y: np.ndarray,
    train: TrainConfig,
    *,
    seed: int,
    progress: Progress | None = None,
) -> list[dict[str, float]]:
    """Train `model` in place with mini-batch gradient descent.

    Args:
        model: The model; its variables are updated.
        x: Inputs, shape (N, d).
        y: Head indices, shape (N,).
        train: Epochs, batch size, optimizer and loss.
        seed: Seed of the batch order.
        progress: Called after every epoch with the epoch's mean loss and accuracy.

    Returns:
        One dict per epoch: ``loss`` and ``acc`` on the training batches.
    """
    opt = _optimizer(train.optimizer, train.learning_rate, train.momentum)
    variables = model.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(xb: tf.Tensor, yb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            probs = model(xb)
            loss = tf.reduce_mean(per_record_loss(probs, yb, train.loss))
        grads = tape.gradient(loss, variables)
        opt.apply_gradients(zip(grads, variables, strict=True))
        hits = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, 1, output_type=tf.int32), yb), tf.float32))
        return loss, hits

    rng = np.random.default_rng(seed)
    history: list[dict[str, float]] = []
    for epoch in range(train.epochs):
        total, hits = 0.0, 0.0
        for idx in batches(len(x), train.batch_size, rng):
            loss, h = step(tf.constant(x[idx]), tf.constant(y[idx]))
            total += float(loss) * len(idx)
            hits += float(h)
        record = {"loss": total / len(x), "acc": hits / len(x)}
        history.append(record)
        if progress is not None:
            progress(epoch + 1, train.epochs, record)
    return history


def predict_outputs(
    model: QNN,
    splits: pd.DataFrame,
    *,
    model_cfg: ModelConfig,
    classes: Sequence[int],
    loss: str,
    model_id: str,
) -> pd.DataFrame:
    """Per-record outputs of `model` on every row of `splits` (the `outputs` artifact)."""
    x = model_inputs(splits, model_cfg)
    y = class_index(splits["label"].to_numpy(), classes)
    z = predict_expectations(model, x)
    probs = model.head(tf.constant(z)).numpy()
    losses = per_record_loss(tf.constant(probs), tf.constant(y), loss).numpy()
    return pd.DataFrame(
        {
            "model_id": model_id,
            "sample_id": splits["sample_id"].to_numpy(),
            "role": splits["role"].to_numpy(),
            "label": splits["label"].to_numpy(),
            "is_forget": splits["is_forget"].to_numpy(),
            "prob": list(probs.astype(np.float32)),
            "z": list(z.astype(np.float32)),
            "loss": losses.astype(np.float64),
            "correct": probs.argmax(axis=1) == y,
        }
    )
