"""The one interface every unlearning method implements, and what the methods share.

A method (`Method` subclass, one module each) gets the trained model and a `Request` (the
forget set U, the retained set R = the target's other training records, and the stopping
target) and changes the model's variables in place. It returns a `Result`: its per-pass
history, whether it reached its stopping target, and how many circuit evaluations it spent.

Stopping target (fixed before a method runs, never picked by looking at test data): for a
class request the forget-set training accuracy ``unlearn.stop_forget_acc``; for a sample
request, the accuracy the model itself scores on held-out records (what a model that never
saw the deleted records would score on them). The iterative methods stop at the first pass
that reaches it, or after ``unlearn.max_epochs`` passes.

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

__all__ = ["Evals", "Method", "PassFn", "Request", "Result", "accuracy", "log_likelihood_loss"]

PassFn = Callable[[np.random.Generator], float]
"""One pass over the forget set (given the batch-order generator); returns the mean objective."""


@dataclass(frozen=True)
class Request:
    """What a method may read (module doc).

    Attributes:
        kind: ``class`` or ``samples``.
        x_forget, y_forget: The forget set U (model inputs, head indices).
        x_retain, y_retain: The retained set R (the target's other training records).
        stop_acc: Forget-set accuracy at or below which the stopping rule is met.
    """

    kind: str
    x_forget: np.ndarray
    y_forget: np.ndarray
    x_retain: np.ndarray
    y_retain: np.ndarray
    stop_acc: float


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


def accuracy(model: QNN, x: np.ndarray, y: np.ndarray, evals: Evals) -> float:
    """Accuracy of `model` on (x, y), counted as forward evaluations."""
    if len(x) == 0:
        return float("nan")
    evals.forward(len(x))
    return float(np.mean(predict_proba(model, x).argmax(axis=1) == y))


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
        """
        rng = np.random.default_rng(seed)
        history: list[dict[str, float]] = []
        reached = False
        for epoch in range(self.cfg.max_epochs):
            objective = one_pass(rng)
            acc = accuracy(model, request.x_forget, request.y_forget, evals)
            record = {"loss": objective, "forget_acc": acc}
            history.append(record)
            if progress is not None:
                progress(epoch + 1, self.cfg.max_epochs, record)
            if acc <= request.stop_acc:
                reached = True
                break
        return Result(history, reached, evals.count)
