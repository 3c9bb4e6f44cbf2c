"""Parameter importances the methods share.

The diagonal empirical Fisher information, per record (`fisher_diagonal`) or per mini-batch
as SSD's reference computes it (`batch_fisher`).

``fisher_diagonal`` is the mean over records of the squared gradient of ``-log p(y|x)`` with
respect to every variable (quantum weights ``theta`` and every classical tensor alike), one
record at a time (per-record gradients, not batch gradients squared, so the importance of the
forget set and of the full set are on the same scale whatever their sizes).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qmu_core._tf import tf
from qmu_core.qnn.models import QNN
from qmu_core.unlearning.base import Evals, log_likelihood_loss

__all__ = ["PerRecord", "batch_fisher", "fisher_diagonal", "gradients"]


PerRecord = Callable[[QNN, tf.Tensor, tf.Tensor], tf.Tensor]
"""A per-record objective ``(model, x, y) -> (B,)`` (default: ``-log p(y|x)``)."""


def gradients(
    model: QNN,
    x: np.ndarray,
    y: np.ndarray,
    evals: Evals,
    *,
    batch_size: int = 64,
    objective: PerRecord = log_likelihood_loss,
) -> dict[str, np.ndarray]:
    """Gradient of the mean `objective` over (x, y), per variable name (not squared)."""
    names = sorted(model.variables)
    variables = [model.variables[k] for k in names]
    total = {k: np.zeros(model.variables[k].shape, np.float64) for k in names}
    for i in range(0, len(x), batch_size):
        xb, yb = tf.constant(x[i : i + batch_size]), tf.constant(y[i : i + batch_size])
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(objective(model, xb, yb))
        grads = tape.gradient(loss, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        for k, g in zip(names, grads, strict=True):
            total[k] += g.numpy()
        evals.gradient(len(xb))
    return {k: v / max(len(x), 1) for k, v in total.items()}


def fisher_diagonal(model: QNN, x: np.ndarray, y: np.ndarray, evals: Evals) -> dict[str, np.ndarray]:
    """Diagonal empirical Fisher per variable name: mean over records of squared per-record gradients.

    That is `batch_fisher` with batches of one record.
    """
    return batch_fisher(model, x, y, evals, batch_size=1)


def batch_fisher(
    model: QNN,
    x: np.ndarray,
    y: np.ndarray,
    evals: Evals,
    *,
    batch_size: int,
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Diagonal Fisher as SSD's reference code computes it.

    The mean over mini-batches (records in a random order from `rng`, else in order) of the
    squared gradient of the batch's mean ``-log p(y|x)``.

    Unlike `fisher_diagonal`, gradients average within a batch before squaring: records that pull
    a parameter the same way (one class) add up, records that disagree (a mix of classes) cancel.
    That is what makes SSD's ratio I_U / I_D large for class-specific parameters.
    """
    names = sorted(model.variables)
    variables = [model.variables[k] for k in names]

    @tf.function(reduce_retracing=True)
    def squared(xb: tf.Tensor, yb: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(log_likelihood_loss(model, xb, yb))
        return [tf.square(g) for g in tape.gradient(loss, variables)]

    order = rng.permutation(len(x)) if rng is not None else np.arange(len(x))
    total = {k: np.zeros(model.variables[k].shape, np.float64) for k in names}
    n_batches = 0
    for i in range(0, len(x), batch_size):
        idx = order[i : i + batch_size]
        for k, g in zip(names, squared(tf.constant(x[idx]), tf.constant(y[idx])), strict=True):
            total[k] += g.numpy()
        n_batches += 1
    evals.gradient(len(x))
    return {k: v / max(n_batches, 1) for k, v in total.items()}
