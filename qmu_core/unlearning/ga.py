"""Gradient ascent (GA) on the forget set, with two objectives (``unlearn.objective``).

* ``ascent`` (the paper's rule): ascend the training loss on the forget set. On a saturated
  model (p(y) ≈ 1 on every forget record) its gradient vanishes: the cross-entropy's gradient
  with respect to the logit margin is ``p(y) - 1`` ≈ 0, and the loss clips probabilities at
  ``1 - 1e-7``, beyond which the gradient is exactly 0. GA then changes nothing.
* ``complement``: descend on ``-log(1 - p(y))``, the cross-entropy of *not* predicting the true
  class. With the logit margin ``m = l_y - logsumexp(l_{j != y})`` it equals ``softplus(m)``,
  computed from the logits (no clipping), and its gradient with respect to ``m`` is
  ``sigmoid(m)`` ∈ (0, 1): bounded, and close to 1, not 0, exactly when the model is saturated.

Both use plain SGD steps (``unlearn.learning_rate``, ``unlearn.batch_size``) on the forget set
only, pass after pass, under the shared stopping rule (`qmu_core.unlearning.base`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from qmu_core._tf import tf, tf_keras
from qmu_core.progress import Progress
from qmu_core.qnn.models import QNN
from qmu_core.qnn.training import batches, per_record_loss
from qmu_core.unlearning.base import Evals, Method, Request, Result

__all__ = ["GradientAscent", "complement_loss", "forget_objective", "forget_step"]


def complement_loss(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``-log(1 - p(y))`` per record = ``softplus(l_y - logsumexp(l_{j != y}))`` (module doc)."""
    n_classes = tf.shape(logits)[1]
    onehot = tf.one_hot(y, n_classes, dtype=logits.dtype)
    true_logit = tf.reduce_sum(onehot * logits, axis=1)
    others = tf.reduce_logsumexp(logits + onehot * tf.constant(-1e30, logits.dtype), axis=1)
    return tf.nn.softplus(true_logit - others)


class GradientAscent(Method):
    """GA on the forget set with ``unlearn.objective`` (module doc). Reads U only."""

    name = "ga"
    reads = "U"

    def run(self, model: QNN, request: Request, *, seed: int, progress: Progress | None = None) -> Result:
        """Passes of SGD steps on the forget set's ``unlearn.objective`` (module doc)."""
        opt = tf_keras.optimizers.SGD(learning_rate=self.cfg.learning_rate)
        step = forget_step(model, opt, self.cfg.objective, self.train.loss)
        evals = Evals()
        x, y = request.x_forget, request.y_forget

        def one_pass(rng: np.random.Generator) -> float:
            total = 0.0
            for idx in batches(len(x), self.cfg.batch_size, rng):
                total += float(step(tf.constant(x[idx]), tf.constant(y[idx]))) * len(idx)
                evals.gradient(len(idx))
            return total / len(x)

        return self.passes(model, request, evals, one_pass, seed=seed, progress=progress)


def forget_objective(model: QNN, xb: tf.Tensor, yb: tf.Tensor, objective: str, loss: str) -> tf.Tensor:
    """The mean forget-set objective to *descend*: the complement loss, or minus the training loss."""
    if objective == "complement":
        return tf.reduce_mean(complement_loss(model.logits(xb), yb))
    return -tf.reduce_mean(per_record_loss(model(xb), yb, loss))


def forget_step(
    model: QNN, opt: tf_keras.optimizers.Optimizer, objective: str, loss: str
) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
    """A compiled SGD step on a forget batch; returns the batch's objective.

    The objective is the ascended loss itself for ``ascent``, the complement loss for ``complement``.
    """
    variables = model.trainable_variables
    sign = 1.0 if objective == "complement" else -1.0

    @tf.function(reduce_retracing=True)
    def step(xb: tf.Tensor, yb: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            value = forget_objective(model, xb, yb, objective, loss)
        opt.apply_gradients(zip(tape.gradient(value, variables), variables, strict=True))
        return sign * value

    return step
