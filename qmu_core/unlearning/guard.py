"""The retained-accuracy guard and the step-size rule every unlearning method runs under.

Both are fixed before a method runs and read only the target's training records, never the
test set:

* **Guard slice.** ``unlearn.guard_records`` records of the retained classes that the target
  never trained on (its held-out records, ``target_holdout``; never the test set; for a sample
  request, which keeps every class, all of them), drawn once per run seed and the same for
  every method. No method reads them. The guard's floor is the
  model's accuracy on the slice before unlearning minus ``unlearn.guard_drop``. A slice of
  the retained *training* records would not do: the target memorised them, and in the
  `default` run GA kept 0.97 accuracy on such a slice while its test accuracy fell by 0.10.
* **Guard.** The iterative methods check the slice after every pass: a pass that takes its
  accuracy below the floor is undone and the method stops there (`Method.passes`). SSD and
  fine-tuning, which make one change, are checked once at the end, and a change below the
  floor is undone.
* **Step-size rule.** Each method runs at its configured step size times each factor of
  ``unlearn.step_scales``, largest first, every time from the same trained model and with the
  same seed (so the rule is deterministic for a seed). The first factor that reaches the
  forget target with the guard holding is kept. When none does, the method keeps the factor
  whose forget metric went furthest with the guard holding, and says it could not meet both.
  The step size is the SGD learning rate; SSD's is its selection threshold (``ssd_alpha``
  divided by the factor: a smaller factor dampens fewer parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qmu_core.config import TrainConfig, UnlearnConfig
from qmu_core.progress import Progress
from qmu_core.qnn.models import QNN
from qmu_core.unlearning.base import Evals, Guard, Method, Request, Result, accuracy

__all__ = ["Guarded", "guard_slice", "guarded_run", "make_guard"]


def guard_slice(n_pool: int, records: int, seed: int) -> np.ndarray:
    """Row positions of the guard slice in its pool: `records` of them (all if fewer), by `seed`."""
    k = min(records, n_pool)
    return np.sort(np.random.default_rng(seed).choice(n_pool, size=k, replace=False))


def make_guard(
    model: QNN, x_pool: np.ndarray, y_pool: np.ndarray, cfg: UnlearnConfig, seed: int, evals: Evals
) -> Guard | None:
    """The guard (module doc) from a pool of held-out retained-class records; None without records."""
    rows = guard_slice(len(x_pool), cfg.guard_records, seed)
    if len(rows) == 0:
        return None
    xg, yg = x_pool[rows], y_pool[rows]
    before = accuracy(model, xg, yg, evals)
    return Guard(xg, yg, before=before, floor=before - cfg.guard_drop)


@dataclass(frozen=True)
class Guarded:
    """The kept run of the step-size rule: its result, its factor, and every factor tried."""

    result: Result
    scale: float
    tried: list[dict[str, float]]
    guard_acc: float | None
    guard_floor: float | None


def _with_scale(progress: Progress | None, scale: float) -> Progress | None:
    """`progress` with the step-size factor in every report (the passes restart for each factor)."""
    if progress is None:
        return None

    def report(step: int, steps: int, values: dict[str, float]) -> None:
        progress(step, steps, {"step_scale": scale, **values})

    return report


def _progress_of(request: Request, result: Result) -> float:
    """How far a run took the forget metric (larger is further): -accuracy, or the loss for samples."""
    if not result.history:
        return float("-inf")
    last = result.history[-1]
    return last["forget_loss"] if request.stop_loss is not None else -last["forget_acc"]


def guarded_run(
    method_cls: type[Method],
    cfg: UnlearnConfig,
    train_cfg: TrainConfig,
    model: QNN,
    request: Request,
    *,
    seed: int,
    progress: Progress | None = None,
) -> Guarded:
    """Run `method_cls` under the guard and the step-size rule (module doc); `model` ends as the kept run.

    Args:
        method_cls: The method's class.
        cfg: The `unlearn` section.
        train_cfg: The `train` section (the method's second argument).
        model: The trained model; changed in place to the kept run's weights.
        request: The deletion request, with its guard (`make_guard`) or without one.
        seed: The method's seed (the same for every factor).
        progress: Called per pass, as the method calls it.
    """
    evals = Evals()
    guarded = request
    start = Method.snapshot(model)
    best: tuple[float, float, Result, dict[str, np.ndarray]] | None = None
    tried: list[dict[str, float]] = []
    kept: tuple[float, Result] | None = None
    for scale in cfg.step_scales:
        Method.restore(model, start)
        impl = method_cls(method_cls.scaled(cfg, scale), train_cfg)
        result = impl.run(model, guarded, seed=seed, progress=_with_scale(progress, scale))
        evals.count += result.circuit_evals
        result.circuit_evals = 0
        tried.append(
            {"scale": scale, "reached": float(result.reached_stop), "guard_stopped": float(result.guard_stopped)}
        )
        if result.reached_stop and not result.guard_stopped:
            kept = (scale, result)
            break
        score = _progress_of(guarded, result)
        if best is None or score > best[0]:
            best = (score, scale, result, Method.snapshot(model))
    if kept is None:
        assert best is not None  # step_scales has at least one factor
        _, scale, result, weights = best
        Method.restore(model, weights)
        result.reached_stop = False
        guard_words = (
            f"accuracy on {len(guarded.guard.x)} held-out retained records >= {guarded.guard.floor:.3f}"
            if guarded.guard
            else "no guard"
        )
        result.note = (
            f"could not meet both its forget target and the guard ({guard_words}) at any step-size factor "
            f"{', '.join(f'{s:g}' for s in cfg.step_scales)}; kept factor {scale:g}, the furthest within the guard"
            + (f". {result.note}" if result.note else "")
        )
        kept = (scale, result)
    scale, result = kept
    result.circuit_evals = evals.count
    if guarded.guard is None:
        return Guarded(result, scale, tried, None, None)
    guard_acc = accuracy(model, guarded.guard.x, guarded.guard.y, Evals())
    return Guarded(result, scale, tried, guard_acc, guarded.guard.floor)
