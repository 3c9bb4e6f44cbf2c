"""Gradient ascent (GA) on the forget set, with two objectives (``unlearn.objective``).

* ``ascent`` (the paper's rule): ascend the training loss on the forget set. On a saturated
  model (p(y) ≈ 1 on every forget record) its gradient vanishes: the cross-entropy's gradient
  with respect to the logit margin is ``p(y) - 1`` ≈ 0, and the loss clips probabilities at
  ``1 - 1e-7``, beyond which the gradient is exactly 0. GA then changes nothing.
* ``complement``: descend on ``-log(1 - p(y))``, the cross-entropy of *not* predicting the true
  class. With the logit margin ``m = l_y - logsumexp(l_{j != y})`` it equals ``softplus(m)``,
  computed from the logits (no clipping), and its gradient with respect to ``m`` is
  ``sigmoid(m)`` ∈ (0, 1): bounded, and close to 1, not 0, exactly when the model is saturated.

Both use plain SGD steps on the forget set only. After each pass the forget-set accuracy is
measured; the run stops as soon as it is at or below ``unlearn.stop_forget_acc`` (a rule fixed
in advance), or after ``unlearn.max_epochs`` passes.
"""

from __future__ import annotations

import numpy as np

from qmu_core._tf import tf, tf_keras
from qmu_core.config import UnlearnConfig
from qmu_core.progress import Progress
from qmu_core.qnn.models import QNN
from qmu_core.qnn.training import batches, per_record_loss, predict_proba

__all__ = ["complement_loss", "gradient_ascent"]


def complement_loss(logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``-log(1 - p(y))`` per record = ``softplus(l_y - logsumexp(l_{j != y}))`` (module doc)."""
    n_classes = tf.shape(logits)[1]
    onehot = tf.one_hot(y, n_classes, dtype=logits.dtype)
    true_logit = tf.reduce_sum(onehot * logits, axis=1)
    others = tf.reduce_logsumexp(logits + onehot * tf.constant(-1e30, logits.dtype), axis=1)
    return tf.nn.softplus(true_logit - others)


def gradient_ascent(
    model: QNN,
    x_forget: np.ndarray,
    y_forget: np.ndarray,
    unlearn: UnlearnConfig,
    *,
    loss: str,
    seed: int,
    progress: Progress | None = None,
) -> list[dict[str, float]]:
    """Unlearn the forget set in place with `unlearn.objective` (module doc).

    Returns:
        One dict per pass: the mean objective ``loss`` (the ascended training loss, or the
        complement loss descended) and the forget-set ``forget_acc`` after the pass.
    """
    opt = tf_keras.optimizers.SGD(learning_rate=unlearn.learning_rate)
    variables = model.trainable_variables
    complement = unlearn.objective == "complement"

    @tf.function(reduce_retracing=True)
    def step(xb: tf.Tensor, yb: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            if complement:
                value = tf.reduce_mean(complement_loss(model.logits(xb), yb))
            else:
                value = tf.reduce_mean(per_record_loss(model(xb), yb, loss))
        grads = tape.gradient(value, variables)
        sign = 1.0 if complement else -1.0  # descend on the complement, ascend on the loss
        opt.apply_gradients(zip([sign * g for g in grads], variables, strict=True))
        return value

    rng = np.random.default_rng(seed)
    history: list[dict[str, float]] = []
    for epoch in range(unlearn.max_epochs):
        total = 0.0
        for idx in batches(len(x_forget), unlearn.batch_size, rng):
            total += float(step(tf.constant(x_forget[idx]), tf.constant(y_forget[idx]))) * len(idx)
        acc = float(np.mean(predict_proba(model, x_forget).argmax(axis=1) == y_forget))
        record = {"loss": total / len(x_forget), "forget_acc": acc}
        history.append(record)
        if progress is not None:
            progress(epoch + 1, unlearn.max_epochs, record)
        if acc <= unlearn.stop_forget_acc:
            break
    return history
