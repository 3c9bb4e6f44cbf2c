"""Unlearning methods, one module per method behind one interface (`base.Method`).

``method(name, unlearn, train)`` builds the method `unlearn.methods` names, from its entry in
the catalogue `qmu_core.config.METHODS` (which lists every method, the fields it reads, its hint
and its class). Modules load on first use (they import TensorFlow). The retrain oracle is a
trained model (`qmu_core.jobs.train` with ``which="oracle"``), the no-op baseline the model
before unlearning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qmu_core.config import METHODS, TrainConfig, UnlearnConfig

if TYPE_CHECKING:
    from qmu_core.unlearning.base import Method

__all__ = ["REVISION", "method"]

REVISION = 2
"""Part of every unlearned model's key (`tasks.unlearning.unlearn`): bump it when a method or the
stopping rule changes what unlearning computes (2: sample requests stop on the held-out loss)."""


def method(name: str, unlearn: UnlearnConfig, train: TrainConfig) -> Method:
    """The unlearning method called `name`, configured.

    Raises:
        ConfigError: If `METHODS` has no method `name`.
    """
    built: Method = METHODS.entry(name).load()(unlearn, train)
    return built
