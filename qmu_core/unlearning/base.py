"""The one interface every unlearning method implements, and what the methods share.

A method (`Method` subclass, one module each) gets the trained model and a `Request` (the
forget set U, the retained set R = the target's other training records, and the stopping
target) and changes the model's variables in place. It returns a `Result`: its per-pass
history, whether it reached its stopping target, and how many circuit evaluations it spent.

Stopping target (fixed before a method runs, never picked by looking at test data): for a
class request, forget-set training accuracy at or below ``unlearn.stop_forget_acc`` (a model that
never saw the class cannot predict it); for a sample request, a forget-set mean ``-log p(y|x)``
at or above the model's own mean on held-out records (the deleted records then look like records
it never trained on; their accuracy need not fall, and the oracle's does not). The iterative
methods stop at the first pass that reaches it, or after ``unlearn.max_epochs`` passes.

Circuit evaluations count simulations of one record's circuit: a forward pass counts one, an
adjoint gradient two (the forward and the backward sweep).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from qmu_core._tf import tf
from qmu_core.config import TrainConfig, UnlearnConfig
from qmu_core.progress import Progress
from qmu_core.qnn.models import QNN
from qmu_core.qnn.training import predict_proba

__all__ = [
    "Evals",
    "Guard",
    "Method",
    "PassFn",
    "Request",
    "Result",
    "acc_and_loss",
    "accuracy",
    "forget_state",
    "log_likelihood_loss",
]

PassFn = Callable[[np.random.Generator], float]
"""One pass over the forget set (given the batch-order generator); returns the mean objective."""


@dataclass(frozen=True)
class Guard:
    """The retained-accuracy guard (`qmu_core.unlearning.guard`): a held-out slice of retained records.

    Attributes:
        x, y: The slice (not in the request's retained set).
        before: The model's accuracy on it before unlearning.
        floor: The accuracy a method may not go below (``before - unlearn.guard_drop``).
    """

    x: np.ndarray
    y: np.ndarray
    before: float
    floor: float


@dataclass(frozen=True)
class Request:
    """What a method may read (module doc).

    Attributes:
        kind: ``class`` or ``samples``.
        x_forget, y_forget: The forget set U (model inputs, head indices).
        x_retain, y_retain: The retained set R (the target's other training records).
        stop_acc: Forget-set accuracy at or below which the stopping rule is met (class requests).
        stop_loss: For sample requests: the forget set's mean ``-log p(y|x)`` at or above which the
            rule is met instead (the model's mean on held-out records); None for class requests.
        guard: The retained-accuracy guard, or None (no guard).
    """

    kind: str
    x_forget: np.ndarray
    y_forget: np.ndarray
    x_retain: np.ndarray
    y_retain: np.ndarray
    stop_acc: float
    stop_loss: float | None = None
    guard: Guard | None = None

    def reached(self, state: dict[str, float]) -> bool:
        """Whether a `forget_state` meets the stopping rule."""
        if self.stop_loss is not None:
            return state["forget_loss"] >= self.stop_loss
        return state["forget_acc"] <= self.stop_acc

    def target(self) -> str:
        """The stopping target in words."""
        if self.stop_loss is not None:
            return f"forget-set loss >= {self.stop_loss:.3f} (held-out records' mean)"
        return f"forget-set accuracy <= {self.stop_acc:.3f}"


@dataclass
class Evals:
    """Counts circuit evaluations (module doc)."""

    count: int = 0

    def forward(self, records: int) -> None:
        """`records` forward simulations."""
        self.count += int(records)

    def gradient(self, records: int) -> None:
        """`records` adjoint gradients: a forward and a backward sweep each."""
        self.count += 2 * int(records)


@dataclass
class Result:
    """What a method did: one dict per pass, whether it met its stopping target, its cost."""

    history: list[dict[str, float]]
    reached_stop: bool
    circuit_evals: int
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    guard_stopped: bool = False
    """The guard undid the last change (the method would have gone below it) and stopped the method."""


def acc_and_loss(model: QNN, x: np.ndarray, y: np.ndarray, evals: Evals) -> tuple[float, float]:
    """Accuracy and mean ``-log p(y|x)`` of `model` on (x, y), one forward evaluation per record."""
    if len(x) == 0:
        return float("nan"), float("nan")
    evals.forward(len(x))
    probs = predict_proba(model, x).astype(np.float64)
    p_true = probs[np.arange(len(probs)), y]
    return float(np.mean(probs.argmax(axis=1) == y)), float(np.mean(-np.log(np.clip(p_true, 1e-12, 1.0))))


def accuracy(model: QNN, x: np.ndarray, y: np.ndarray, evals: Evals) -> float:
    """Accuracy of `model` on (x, y), counted as forward evaluations."""
    return acc_and_loss(model, x, y, evals)[0]


def forget_state(model: QNN, request: Request, evals: Evals) -> dict[str, float]:
    """The forget set's accuracy and mean ``-log p(y|x)`` (one forward evaluation per record)."""
    acc, loss = acc_and_loss(model, request.x_forget, request.y_forget, evals)
    return {"forget_acc": acc, "forget_loss": loss}


def log_likelihood_loss(model: QNN, x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """``-log p(y|x)`` per record from the logits (no clipping, so it has gradient when saturated)."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=model.logits(x))


class Method(ABC):
    """An unlearning method (module doc). Subclasses set `name`, `reads` and implement `run`."""

    name: ClassVar[str]
    reads: ClassVar[str]
    """Which data the method reads: ``U`` (forget set), ``U, R`` (and the retained set) or ``R``."""

    def __init__(self, unlearn: UnlearnConfig, train: TrainConfig) -> None:
        self.cfg = unlearn
        self.train = train

    @classmethod
    def scaled(cls, cfg: UnlearnConfig, factor: float) -> UnlearnConfig:
        """`cfg` with this method's step size times `factor` (the step-size rule, `qmu_core.unlearning.guard`)."""
        return cfg.model_copy(update={"learning_rate": cfg.learning_rate * factor})

    @staticmethod
    def below_guard(model: QNN, request: Request, evals: Evals) -> bool:
        """Whether `model` is below the request's guard floor (False without a guard)."""
        if request.guard is None:
            return False
        return accuracy(model, request.guard.x, request.guard.y, evals) < request.guard.floor

    @staticmethod
    def snapshot(model: QNN) -> dict[str, np.ndarray]:
        """Copies of every variable of `model` (`restore` puts them back)."""
        return {name: var.numpy().copy() for name, var in model.variables.items()}

    @staticmethod
    def restore(model: QNN, values: dict[str, np.ndarray]) -> None:
        """Put a `snapshot` back."""
        for name, value in values.items():
            model.variables[name].assign(value)

    def checked_once(self, model: QNN, request: Request, before: dict[str, np.ndarray], result: Result) -> Result:
        """For the one-change methods (SSD, fine-tuning): undo the change if it went below the guard."""
        evals = Evals()
        if self.below_guard(model, request, evals):
            self.restore(model, before)
            state = forget_state(model, request, evals)
            result.history.append({"loss": float("nan"), **state})
            result.reached_stop = False
            result.guard_stopped = True
            result.note += "; undone: it took the guard slice below its floor"
        result.circuit_evals += evals.count
        return result

    @abstractmethod
    def run(self, model: QNN, request: Request, *, seed: int, progress: Progress | None = None) -> Result:
        """Unlearn `request` from `model` in place."""

    def passes(
        self,
        model: QNN,
        request: Request,
        evals: Evals,
        one_pass: PassFn,
        *,
        seed: int,
        progress: Progress | None,
    ) -> Result:
        """The iterative methods' loop: `one_pass` until the stopping target or ``max_epochs``.

        `one_pass(rng)` makes one pass over the forget set and returns its mean objective.
        After every pass the guard is checked: a pass that takes the model below it is undone
        and the loop stops (``Result.guard_stopped``; `qmu_core.unlearning.guard`).
        """
        rng = np.random.default_rng(seed)
        history: list[dict[str, float]] = []
        reached = stopped = False
        for epoch in range(self.cfg.max_epochs):
            before = self.snapshot(model) if request.guard is not None else None
            objective = one_pass(rng)
            if before is not None and self.below_guard(model, request, evals):
                self.restore(model, before)
                stopped = True
                break
            record = {"loss": objective, **forget_state(model, request, evals)}
            history.append(record)
            if progress is not None:
                progress(epoch + 1, self.cfg.max_epochs, record)
            if request.reached(record):
                reached = True
                break
        return Result(history, reached, evals.count, guard_stopped=stopped)
