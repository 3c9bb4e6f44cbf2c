"""Unlearning methods, one module per method behind one interface (`base.Method`).

``method(name, unlearn, train)`` builds the method `unlearn.methods` names: ``ga``
(`ga.GradientAscent`), ``ssd`` (`ssd.SelectiveSynapticDampening`), ``rga``
(`rga.RelativeGradientAscent`), ``salun`` (`salun.SalUn`) and ``finetune`` (`finetune.FineTune`).
Modules load on first use (they import TensorFlow). The retrain oracle is a trained model
(`qmu_core.qnn.jobs.train` with ``which="oracle"``), the no-op baseline the model before unlearning.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from qmu_core.config import UNLEARN_METHODS, TrainConfig, UnlearnConfig
from qmu_core.errors import ConfigError

if TYPE_CHECKING:
    from qmu_core.unlearning.base import Method

__all__ = ["IMPLEMENTATIONS", "REVISION", "method"]

REVISION = 2
"""Part of every unlearned model's key (`tasks.unlearning.unlearn`): bump it when a method or the
stopping rule changes what unlearning computes (2: sample requests stop on the held-out loss)."""

IMPLEMENTATIONS = {
    "ga": ("qmu_core.unlearning.ga", "GradientAscent"),
    "ssd": ("qmu_core.unlearning.ssd", "SelectiveSynapticDampening"),
    "rga": ("qmu_core.unlearning.rga", "RelativeGradientAscent"),
    "salun": ("qmu_core.unlearning.salun", "SalUn"),
    "finetune": ("qmu_core.unlearning.finetune", "FineTune"),
}
assert tuple(IMPLEMENTATIONS) == UNLEARN_METHODS


def method(name: str, unlearn: UnlearnConfig, train: TrainConfig) -> Method:
    """The unlearning method called `name`, configured."""
    if name not in IMPLEMENTATIONS:
        raise ConfigError(f"Unknown unlearning method {name!r}; choose from {', '.join(IMPLEMENTATIONS)}.")
    module, cls = IMPLEMENTATIONS[name]
    built: Method = getattr(import_module(module), cls)(unlearn, train)
    return built
