"""SalUn: saliency-masked random-label unlearning, its random-label (RL) variant.

Fan et al., ICLR 2024, "SalUn: Empowering machine unlearning via gradient-based weight saliency".

Saliency mask, computed once on the trained model before the first step:

    m = 1[ |∇_θ L_U(θ)| ≥ γ ],

with ``L_U`` the mean ``-log p(y|x)`` over the forget set U (from the logits, no clipping:
`qmu_core.unlearning.importance.gradients`). If that gradient is exactly zero everywhere (a model
saturated beyond float32), ``L_U`` is the mean complement loss ``-log(1 - p(y))`` instead
(`qmu_core.unlearning.ga.complement_loss`), whose gradient does not vanish there; the note says
so. γ is one threshold over all parameters (circuit weights and classical tensors together), set
so that exactly ``k = max(1, round(s · N))`` of the ``N`` parameters are salient,
``s = unlearn.salun_sparsity``: the k largest ``|∇|``. Ties at γ are broken by position
(variables in name order, each row-major), so the count is exact; when fewer than k parameters
have a nonzero gradient, zero-gradient parameters fill the mask in that order.

Then passes of random-label unlearning: each step takes a forget batch b_U (``unlearn.batch_size``
records of a fresh permutation of U per pass) with labels drawn uniformly from the classes other
than the true one, redrawn every step from the pass generator, and a retained batch b_R (the next
``unlearn.batch_size`` records of a cyclic stream of permutations of R,
`qmu_core.unlearning.rga.RetainedBatches`), and makes the plain SGD step (no momentum)

    θ ← θ − η · m ⊙ ∇_θ [ CE(b_U, random labels) + CE(b_R, y_R) ],

η = ``unlearn.salun_learning_rate`` (default ``unlearn.learning_rate``),
CE the mean ``-log p(y|x)`` from the logits. Non-salient parameters
are never written (``where(m, θ − η g, θ)``), so they stay bit-identical. With an empty R the
retained term is dropped. Passes run under the shared stopping rule
(`qmu_core.unlearning.base`); a pass's ``loss`` is the mean of the step objective above over the
pass's forget records. Circuit evaluations: two per forget record for the saliency gradient (four
with the complement fallback), two per record of every forget and retained batch, one per forget
record for each pass's accuracy check.
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
from qmu_core.unlearning.ga import complement_loss
from qmu_core.unlearning.importance import gradients
from qmu_core.unlearning.rga import RetainedBatches

__all__ = ["SalUn", "complement_gradients", "random_labels", "saliency_mask", "salun_step"]

SalUnStep = Callable[[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]


def complement_gradients(
    model: QNN, x: np.ndarray, y: np.ndarray, evals: Evals, *, batch_size: int = 64
) -> dict[str, np.ndarray]:
    """Gradient of the mean complement loss ``-log(1 - p(y))`` over (x, y), per variable name."""

    def complement(m: QNN, xb: tf.Tensor, yb: tf.Tensor) -> tf.Tensor:
        return complement_loss(m.logits(xb), yb)

    return gradients(model, x, y, evals, batch_size=batch_size, objective=complement)


def saliency_mask(grads: Mapping[str, np.ndarray], sparsity: float) -> dict[str, np.ndarray]:
    """Boolean mask per variable name: the ``max(1, round(sparsity · N))`` largest ``|grad|`` over all parameters.

    All parameters are ranked together; ties are broken by position (module doc).
    """
    names = sorted(grads)
    flat = np.concatenate([np.abs(np.asarray(grads[k], np.float64)).ravel() for k in names])
    k = min(flat.size, max(1, int(np.floor(sparsity * flat.size + 0.5))))
    order = np.argsort(-flat, kind="stable")  # descending magnitude, earlier position first on ties
    keep = np.zeros(flat.size, dtype=bool)
    keep[order[:k]] = True
    out, start = {}, 0
    for name in names:
        shape = np.shape(grads[name])
        size = int(np.prod(shape, dtype=np.int64))
        out[name] = keep[start : start + size].reshape(shape)
        start += size
    return out


def random_labels(y: np.ndarray, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """A label for every record, uniform over the classes other than its own (``y`` as head indices)."""
    return ((y + rng.integers(1, n_classes, size=len(y))) % n_classes).astype(y.dtype)


def salun_step(model: QNN, mask: Mapping[str, np.ndarray], *, learning_rate: float, use_retain: bool) -> SalUnStep:
    """A compiled masked SGD step ``step(x_U, random_y_U, x_R, y_R)`` (module doc); returns its objective.

    With ``use_retain=False`` the retained batch is ignored (not evaluated).
    """
    names = sorted(model.variables)
    variables = [model.variables[k] for k in names]
    masks = [tf.constant(np.asarray(mask[k], bool)) for k in names]

    @tf.function(reduce_retracing=True)
    def step(xu: tf.Tensor, yu: tf.Tensor, xr: tf.Tensor, yr: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(log_likelihood_loss(model, xu, yu))
            if use_retain:
                value += tf.reduce_mean(log_likelihood_loss(model, xr, yr))
        grads = tape.gradient(value, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        for var, m, g in zip(variables, masks, grads, strict=True):
            var.assign(tf.where(m, var - learning_rate * g, var))
        return value

    return step


class SalUn(Method):
    """SalUn, random-label variant, with a global saliency mask (module doc). Reads U and R."""

    name = "salun"
    reads = "U, R"

    @classmethod
    def scaled(cls, cfg: UnlearnConfig, factor: float) -> UnlearnConfig:
        """This method's step is ``salun_learning_rate`` (or ``learning_rate`` when that is empty)."""
        return cfg.model_copy(update={"salun_learning_rate": cfg.step_size("salun") * factor})

    def run(self, model: QNN, request: Request, *, seed: int, progress: Progress | None = None) -> Result:
        """Passes of random-label steps on the salient parameters only (module doc)."""
        evals = Evals()
        xu, yu, xr, yr = request.x_forget, request.y_forget, request.x_retain, request.y_retain
        bs = self.cfg.batch_size
        grads = gradients(model, xu, yu, evals, batch_size=bs)
        source = "-log p(y|x)"
        if all(not np.any(g) for g in grads.values()):
            grads = complement_gradients(model, xu, yu, evals, batch_size=bs)
            source = "the complement loss -log(1 - p(y)) (the -log p(y|x) gradient is all zeros)"
        mask = saliency_mask(grads, self.cfg.salun_sparsity)
        use_retain = len(xr) > 0
        step = salun_step(model, mask, learning_rate=self.cfg.step_size("salun"), use_retain=use_retain)
        retained = RetainedBatches(len(xr))

        def one_pass(rng: np.random.Generator) -> float:
            total = 0.0
            for idx in batches(len(xu), bs, rng):
                y_rand = random_labels(yu[idx], model.n_classes, rng)
                ridx = retained.take(bs, rng) if use_retain else np.zeros(0, dtype=np.int64)
                value = step(tf.constant(xu[idx]), tf.constant(y_rand), tf.constant(xr[ridx]), tf.constant(yr[ridx]))
                total += float(value) * len(idx)
                evals.gradient(len(idx) + len(ridx))
            return total / len(xu)

        result = self.passes(model, request, evals, one_pass, seed=seed, progress=progress)
        salient = int(sum(int(m.sum()) for m in mask.values()))
        params = int(sum(m.size for m in mask.values()))
        result.note = (
            f"{salient} of {params} parameters salient (sparsity {self.cfg.salun_sparsity:g}, "
            f"saliency from the gradient of {source}); the others are unchanged"
        )
        result.extra = {"salient": salient, "params": params}
        return result
