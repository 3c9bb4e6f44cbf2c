"""Relative gradient ascent (RGA): importance-weighted forgetting plus descent on the retained set.

The paper names RGA but does not publish its update rule; this one is ours. Let ``I_U`` and
``I_R`` be the diagonal empirical Fisher informations of the forget set U and the retained set R
(`qmu_core.unlearning.importance.fisher_diagonal`), computed once, on the trained model, before
the first step. Every parameter i (circuit weights and classical tensors alike) gets the weight

    w_i = I_U,i / (I_U,i + I_R,i + eps),        eps = 1e-12,

in [0, 1): close to 1 for a parameter only U relies on, close to 0 for one only R relies on. The
``eps`` turns the 0/0 of a parameter neither set uses (``I_U,i = I_R,i = 0``) into weight 0, so
such a parameter is left alone by the forget term; it is far below the Fisher values of
parameters in use, but a parameter whose ``I_U,i + I_R,i`` is itself of order ``eps`` gets a
weight shrunk towards 0. Each step, on a forget batch b_U and a retained batch b_R, is plain SGD
(no momentum) on all parameters at once, both gradients taken at the same θ:

    θ ← θ − η · ( w ⊙ ∇_θ F(b_U) + ρ · ∇_θ CE(b_R) ),

where F is GA's forget objective to descend (`qmu_core.unlearning.ga.forget_objective` with
``unlearn.objective``: the complement loss ``-log(1 - p(y))``, or minus the training loss),
CE is the mean ``-log p(y|x)`` from the logits (whatever ``train.loss``), ρ is
``unlearn.rga_retain_weight`` and η is ``unlearn.rga_learning_rate`` (default
``unlearn.learning_rate``). With w = 1 and ρ = 0 the step is exactly a GA step.

Forget batches are ``unlearn.batch_size`` records of a fresh permutation of U every pass; each is
paired with the next ``unlearn.batch_size`` records of a cyclic stream of random permutations of R
(`RetainedBatches`), all drawn from the pass generator. With ρ = 0, or an empty R, there is no
retained term and no retained circuit evaluations. Passes run under the shared stopping rule
(`qmu_core.unlearning.base`). Circuit evaluations: two per record for each Fisher (on U and on R)
and per record of every forget and retained batch, one per forget record for each pass's
accuracy check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from qmu_core._tf import tf
from qmu_core.config import UnlearnConfig
from qmu_core.progress import Progress
from qmu_core.qnn.models import QNN
from qmu_core.qnn.training import batches
from qmu_core.unlearning.base import Evals, Method, Request, Result, log_likelihood_loss
from qmu_core.unlearning.ga import forget_objective
from qmu_core.unlearning.importance import fisher_diagonal

__all__ = ["EPS", "RelativeGradientAscent", "RetainedBatches", "relative_weights", "rga_step"]

EPS = 1e-12
"""The ``eps`` of ``w = I_U / (I_U + I_R + eps)`` (module doc)."""

RGAStep = Callable[[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]


class RetainedBatches:
    """Batches of retained-record indices from a cyclic stream of random permutations.

    `take(size, rng)` returns the next `size` indices (at most ``n``, without repeats inside one
    batch unless it wraps around a permutation boundary), drawing a new permutation from `rng`
    whenever the stream runs out. The stream persists across passes, so every retained record is
    used equally often over a run.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self._queue = np.zeros(0, dtype=np.int64)

    def take(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """The next `size` indices of the stream (class doc)."""
        size = min(size, self.n)
        while len(self._queue) < size:
            self._queue = np.concatenate([self._queue, rng.permutation(self.n)])
        out, self._queue = self._queue[:size], self._queue[size:]
        return out


def relative_weights(
    forget_importance: Mapping[str, np.ndarray], retain_importance: Mapping[str, np.ndarray], *, eps: float = EPS
) -> dict[str, np.ndarray]:
    """``w = I_U / (I_U + I_R + eps)`` per variable name (module doc); 0 where both are 0."""
    return {
        k: np.asarray(forget_importance[k], np.float64)
        / (np.asarray(forget_importance[k], np.float64) + np.asarray(retain_importance[k], np.float64) + eps)
        for k in forget_importance
    }


def rga_step(
    model: QNN,
    weights: Mapping[str, np.ndarray],
    *,
    learning_rate: float,
    retain_weight: float,
    objective: str,
    loss: str,
) -> RGAStep:
    """A compiled RGA step ``step(x_U, y_U, x_R, y_R)`` (module doc).

    Returns the batch's forget objective as GA reports it (the complement loss, or the ascended training loss).

    With ``retain_weight == 0`` the retained batch is ignored (not evaluated).
    """
    names = sorted(model.variables)
    variables = [model.variables[k] for k in names]
    w = [tf.constant(np.asarray(weights[k]), tf.float32) for k in names]
    sign = 1.0 if objective == "complement" else -1.0
    use_retain = retain_weight > 0

    @tf.function(reduce_retracing=True)
    def step(xu: tf.Tensor, yu: tf.Tensor, xr: tf.Tensor, yr: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            value = forget_objective(model, xu, yu, objective, loss)
        g_forget = tape.gradient(value, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        updates = [wk * g for wk, g in zip(w, g_forget, strict=True)]
        if use_retain:
            with tf.GradientTape() as tape:
                retained = tf.reduce_mean(log_likelihood_loss(model, xr, yr))
            g_retain = tape.gradient(retained, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            updates = [u + retain_weight * g for u, g in zip(updates, g_retain, strict=True)]
        for var, u in zip(variables, updates, strict=True):
            var.assign_sub(learning_rate * u)
        return sign * value

    return step


class RelativeGradientAscent(Method):
    """RGA (module doc). Reads U and R."""

    name = "rga"
    reads = "U, R"

    @classmethod
    def scaled(cls, cfg: UnlearnConfig, factor: float) -> UnlearnConfig:
        """This method's step is ``rga_learning_rate`` (or ``learning_rate`` when that is empty)."""
        return cfg.model_copy(update={"rga_learning_rate": cfg.step_size("rga") * factor})

    def run(self, model: QNN, request: Request, *, seed: int, progress: Progress | None = None) -> Result:
        """Passes of RGA steps with the relative weights from the Fisher of U and R (module doc)."""
        evals = Evals()
        xu, yu, xr, yr = request.x_forget, request.y_forget, request.x_retain, request.y_retain
        weights = relative_weights(fisher_diagonal(model, xu, yu, evals), fisher_diagonal(model, xr, yr, evals))
        rho = self.cfg.rga_retain_weight if len(xr) > 0 else 0.0
        step = rga_step(
            model,
            weights,
            learning_rate=self.cfg.step_size("rga"),
            retain_weight=rho,
            objective=self.cfg.objective,
            loss=self.train.loss,
        )
        retained = RetainedBatches(len(xr))
        bs = self.cfg.batch_size

        def one_pass(rng: np.random.Generator) -> float:
            total = 0.0
            for idx in batches(len(xu), bs, rng):
                ridx = retained.take(bs, rng) if rho > 0 else np.zeros(0, dtype=np.int64)
                value = step(tf.constant(xu[idx]), tf.constant(yu[idx]), tf.constant(xr[ridx]), tf.constant(yr[ridx]))
                total += float(value) * len(idx)
                evals.gradient(len(idx) + len(ridx))
            return total / len(xu)

        result = self.passes(model, request, evals, one_pass, seed=seed, progress=progress)
        flat = np.concatenate([w.ravel() for w in weights.values()])
        result.note = (
            f"relative weights w = I_U / (I_U + I_R + eps): mean {flat.mean():.3f}, "
            f"{int(np.sum(flat > 0.5))} of {flat.size} parameters above 0.5; retain weight {rho:g}"
        )
        result.extra = {"weight_mean": float(flat.mean()), "weight_above_half": int(np.sum(flat > 0.5))}
        return result
