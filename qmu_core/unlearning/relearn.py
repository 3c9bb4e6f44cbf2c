"""Relearn time: how many fine-tuning steps bring the forget accuracy back.

A model that only hides the forget set (small weight changes that flip its decisions) relearns
it in a few steps; a model that never learned it (the oracle) needs about as many as learning
it from scratch. From the model under test, SGD steps with the train section's optimizer and
loss on random batches of the forget set (``unlearn.batch_size`` records) run until the
forget-set training accuracy reaches `RELEARN_SHARE` of the accuracy the model had before
unlearning, checked after every step, at most ``unlearn.relearn_max_steps`` steps.
"""

from __future__ import annotations

import numpy as np

from qmu_core._tf import tf
from qmu_core.config import TrainConfig
from qmu_core.qnn.models import QNN
from qmu_core.qnn.training import batches, optimizer, per_record_loss
from qmu_core.unlearning.base import Evals, accuracy

__all__ = ["RELEARN_SHARE", "relearn_steps"]

RELEARN_SHARE = 0.95
"""Relearning is done at this share of the original forget-set accuracy."""


def relearn_steps(
    model: QNN,
    x: np.ndarray,
    y: np.ndarray,
    train: TrainConfig,
    *,
    target_acc: float,
    batch_size: int,
    max_steps: int,
    seed: int,
) -> tuple[int | None, list[float]]:
    """Fine-tune `model` in place on (x, y) until its accuracy reaches `target_acc` (module doc).

    Returns:
        The number of steps taken (0 if it is already there, None if not within `max_steps`),
        and the accuracy before the first step and after every step.
    """
    evals = Evals()
    opt = optimizer(train)
    variables = model.trainable_variables

    @tf.function(reduce_retracing=True)
    def step(xb: tf.Tensor, yb: tf.Tensor) -> None:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(per_record_loss(model(xb), yb, train.loss))
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))

    rng = np.random.default_rng(seed)
    curve = [accuracy(model, x, y, evals)]
    order: list[np.ndarray] = []
    for n in range(1, max_steps + 1):
        if curve[-1] >= target_acc:
            return n - 1, curve
        if not order:
            order = batches(len(x), batch_size, rng)
        idx = order.pop(0)
        step(tf.constant(x[idx]), tf.constant(y[idx]))
        curve.append(accuracy(model, x, y, evals))
    return (max_steps if curve[-1] >= target_acc else None), curve
