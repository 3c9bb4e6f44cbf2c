"""Selective synaptic dampening (SSD; Foster, Schoepf and Brintrup, AAAI 2024).

SSD needs no training: one step shrinks the parameters that matter much more to the forget set
U than to the full training set D = U ∪ R, and leaves every other parameter untouched.

* Importances: ``I_D`` and ``I_U`` of every scalar parameter, quantum weights ``theta`` and
  classical tensors alike, from the diagonal empirical Fisher as Foster et al. compute it
  (`qmu_core.unlearning.importance.batch_fisher`): the mean over mini-batches of
  ``unlearn.batch_size`` records (seeded random order) of the squared gradient of the batch's
  mean ``-log p(y|x)``, on D = U ∪ R and on U. Within a batch of U (one class, for a class
  request) gradients add up; within a batch of D they partly cancel, so the ratio ``I_U / I_D``
  is large for class-specific parameters. With ``unlearn.ssd_importance = "qfi"`` the ``theta``
  entries use the diagonal of the circuit's quantum Fisher information instead
  (`qmu_core.unlearning.qfi`, per-record means over D and over U): how far the encoded state
  moves when a weight moves, label-free; the classical parameters keep the Fisher.
* Selection: parameter ``i`` is *specialised* to the forget set when ``I_U,i > alpha * I_D,i``
  (``unlearn.ssd_alpha``).
* Dampening: a selected parameter is multiplied by ``beta_i = min(lambda * I_D,i / I_U,i, 1)``
  (``unlearn.ssd_lambda``): the more specialised, the closer to zero. Every other parameter stays
  bit-identical.

Why: a parameter whose importance on U is alpha times its importance on all the data encodes
something U-specific; shrinking it towards zero removes that knowledge while the parameters the
retained data relies on (``I_D`` comparable to ``I_U``) are kept.

Zero importances: a parameter is selected only if ``I_U > alpha * I_D >= 0``, so ``beta``'s
divisor ``I_U`` is never 0; `dampen` applied to arbitrary arrays with ``I_D = 0 < I_U`` zeroes the
parameter (the limit ``beta -> 0`` of an unbounded ratio).

Selection bound of the QFI option: per-record means give ``I_D >= |U|/|D| I_U``, so the QFI ratio of
a circuit weight never exceeds ``|D|/|U|`` (about 10 for one class of ten): with ``qfi``, ``alpha``
must sit below it for any circuit weight to be selected; the run's note says so. (A per-record
Fisher has the same bound, which is why the Fisher here is per batch, as in SSD's reference.)

Cost (`Evals`): a gradient (2 evaluations) per record of D and of U, with ``qfi`` also one forward
simulation per record of D (``1 + K`` for a model plug-in with ``K`` weight symbols,
`qmu_core.unlearning.circuit_qfi`), and the forget-set accuracy afterwards (one per record of U).
"""

from __future__ import annotations

import numpy as np

from qmu_core.config import UnlearnConfig
from qmu_core.progress import Progress
from qmu_core.qnn.models import QNN
from qmu_core.unlearning.base import Evals, Method, Request, Result, forget_state
from qmu_core.unlearning.importance import batch_fisher
from qmu_core.unlearning.qfi import qfi_diagonal

__all__ = ["SelectiveSynapticDampening", "dampen", "importances"]


def dampen(
    weights: np.ndarray, imp_full: np.ndarray, imp_forget: np.ndarray, alpha: float, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """SSD's rule on one tensor (module doc).

    Args:
        weights: The parameter values.
        imp_full: ``I_D``, same shape, non-negative.
        imp_forget: ``I_U``, same shape, non-negative.
        alpha: Selection threshold (> 0).
        lam: Dampening constant (> 0).

    Returns:
        ``(new_weights, mask)``: `weights` (same dtype) with every entry where ``I_U > alpha I_D``
        multiplied by ``min(lam I_D / I_U, 1)`` (in float64, then cast back) and every other entry
        unchanged; `mask` marks the dampened entries.

    Raises:
        ValueError: Shapes differ, or an importance is negative or not finite.
    """
    w = np.asarray(weights)
    full, forget = np.asarray(imp_full, np.float64), np.asarray(imp_forget, np.float64)
    if not (w.shape == full.shape == forget.shape):
        raise ValueError(f"dampen needs equal shapes; got weights {w.shape}, I_D {full.shape}, I_U {forget.shape}.")
    for name, imp in (("I_D", full), ("I_U", forget)):
        if not np.all(np.isfinite(imp)) or np.any(imp < 0):
            raise ValueError(f"SSD importance {name} must be finite and non-negative (it is a mean of squares).")
    mask = forget > alpha * full
    beta = np.ones_like(forget)
    beta[mask] = np.minimum(lam * full[mask] / forget[mask], 1.0)
    dampened = (w.astype(np.float64) * beta).astype(w.dtype)
    return np.where(mask, dampened, w), mask


def importances(
    model: QNN, request: Request, importance: str, evals: Evals, *, batch_size: int, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(I_D, I_U)`` per variable name (module doc); ``theta`` from the QFI when `importance` is ``qfi``."""
    quantum: dict[str, np.ndarray] = {}
    if importance == "qfi":  # first, so a model it does not support fails before the Fisher sweeps
        n_u, n_r = len(request.x_forget), len(request.x_retain)
        q_forget = qfi_diagonal(model, request.x_forget, evals)
        q_retain = qfi_diagonal(model, request.x_retain, evals)
        quantum = {"forget": q_forget, "full": (n_u * q_forget + n_r * q_retain) / max(n_u + n_r, 1)}
    rng = np.random.default_rng(seed)
    x_all = np.concatenate([request.x_forget, request.x_retain])
    y_all = np.concatenate([request.y_forget, request.y_retain])
    full = batch_fisher(model, x_all, y_all, evals, batch_size=batch_size, rng=rng)
    forget = batch_fisher(model, request.x_forget, request.y_forget, evals, batch_size=batch_size, rng=rng)
    if quantum:
        forget["theta"], full["theta"] = quantum["forget"], quantum["full"]
    return full, forget


class SelectiveSynapticDampening(Method):
    """SSD (module doc): one dampening step from the importances on D = U ∪ R and on U."""

    name = "ssd"
    reads = "U, R"

    def run(self, model: QNN, request: Request, *, seed: int, progress: Progress | None = None) -> Result:
        """One dampening step on the parameters specialised to the forget set (module doc)."""
        alpha, lam = self.cfg.ssd_alpha, self.cfg.ssd_lambda
        evals = Evals()
        before = self.snapshot(model)
        full, forget = importances(
            model, request, self.cfg.ssd_importance, evals, batch_size=self.cfg.batch_size, seed=seed
        )
        n_dampened, n_params = 0, 0
        for name, var in model.variables.items():
            new, mask = dampen(var.numpy(), full[name], forget[name], alpha, lam)
            n_params += mask.size
            if mask.any():
                var.assign(new)
                n_dampened += int(mask.sum())
        state = forget_state(model, request, evals)
        n_u = len(request.x_forget)
        bound = (n_u + len(request.x_retain)) / n_u if n_u else float("inf")
        hint = (
            f"; with qfi, alpha >= |D|/|U| = {bound:.3g} selects no circuit weight"
            if alpha >= bound and self.cfg.ssd_importance == "qfi"
            else ""
        )
        record = {**state, "dampened": float(n_dampened)}
        if progress is not None:
            progress(1, 1, record)
        result = Result(
            history=[record],
            reached_stop=request.reached(state),
            circuit_evals=evals.count,
            note=f"dampened {n_dampened} of {n_params} parameters (alpha={alpha:g}, lambda={lam:g}, "
            f"importance={self.cfg.ssd_importance}){hint}",
            extra={"dampened": n_dampened, "params": n_params},
        )
        return self.checked_once(model, request, before, result)

    @classmethod
    def scaled(cls, cfg: UnlearnConfig, factor: float) -> UnlearnConfig:
        """SSD's step is its selection threshold: ``ssd_alpha / factor`` (a smaller factor dampens fewer)."""
        return cfg.model_copy(update={"ssd_alpha": cfg.ssd_alpha / factor})
