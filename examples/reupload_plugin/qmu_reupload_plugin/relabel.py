"""An example QMU unlearning plug-in: ``random_label``, fine-tuning on the forget set with wrong labels.

Every pass takes the forget set U in a fresh random order, gives each record a label drawn
uniformly from the classes other than its own (redrawn every pass), and makes plain SGD steps
(``unlearn.learning_rate``, ``unlearn.batch_size`` records) on the cross-entropy of those labels,
computed from the logits. The model unlearns U by learning something else about it (Golatkar et
al.'s "random labels" baseline; SalUn without its saliency mask or retained batches). Passes run
under QMU's stopping rule: at most ``unlearn.max_epochs``, stopping at the first pass that reaches
the request's target (`Method.passes`); QMU's retained-accuracy guard and step-size rule apply as
to every method. Circuit evaluations: two per forget record per step (the adjoint gradient), one
per forget record per pass (the stopping check).

QMU finds it through the entry point ``random_label`` in the group ``qmu.unlearning``
(``pyproject.toml``) once ``unlearn.methods`` lists it.
"""

from __future__ import annotations

import numpy as np

from qmu_core._tf import tf, tf_keras  # QMU's TensorFlow, set up for TFQ's Keras 2 layers
from qmu_core.progress import Progress
from qmu_core.qnn.models import QNN
from qmu_core.qnn.training import batches
from qmu_core.unlearning.base import Evals, Method, Request, Result, log_likelihood_loss

__all__ = ["RandomLabel", "other_labels"]


def other_labels(y: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A label per record, uniform over the classes other than its own (`y`: head indices)."""
    return ((y + rng.integers(1, n_classes, size=len(y))) % n_classes).astype(y.dtype)


class RandomLabel(Method):
    """Random-label fine-tuning on the forget set (module doc). Reads U only."""

    name = "random_label"
    reads = "U"
    hint = "Raise unlearn.learning_rate or unlearn.max_epochs."

    def run(self, model: QNN, request: Request, *, seed: int, progress: Progress | None = None) -> Result:
        """Passes of SGD steps on the forget set with random wrong labels (module doc)."""
        variables = model.trainable_variables
        opt = tf_keras.optimizers.SGD(learning_rate=self.cfg.learning_rate)
        evals = Evals()
        x, y = request.x_forget, request.y_forget

        @tf.function(reduce_retracing=True)
        def step(xb: tf.Tensor, yb: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                value = tf.reduce_mean(log_likelihood_loss(model, xb, yb))
            opt.apply_gradients(zip(tape.gradient(value, variables), variables, strict=True))
            return value

        def one_pass(rng: np.random.Generator) -> float:
            wrong = other_labels(y, model.n_classes, rng)
            total = 0.0
            for idx in batches(len(x), self.cfg.batch_size, rng):
                total += float(step(tf.constant(x[idx]), tf.constant(wrong[idx]))) * len(idx)
                evals.gradient(len(idx))
            return total / len(x)

        return self.passes(model, request, evals, one_pass, seed=seed, progress=progress)
