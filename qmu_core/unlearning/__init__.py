"""Unlearning methods, one module per method behind one interface (`base.Method`).

``method(name, unlearn, train)`` builds the method `unlearn.methods` names, from its entry in
the catalogue `qmu_core.config.METHODS` (which lists every method, the fields it reads, its hint
and its class), or an installed unlearning plug-in's registered name (`qmu_core.unlearning.plugin`).
Modules load on first use (they import TensorFlow). The retrain oracle is a
trained model (`qmu_core.jobs.train` with ``which="oracle"``), the no-op baseline the model
before unlearning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qmu_core.config import METHOD_PLUGINS, METHODS, TrainConfig, UnlearnConfig

if TYPE_CHECKING:
    from qmu_core.unlearning.base import Method

__all__ = ["REVISION", "hint", "method"]

REVISION = 2
"""Part of every unlearned model's key (`tasks.unlearning.unlearn`): bump it when a method or the
stopping rule changes what unlearning computes (2: sample requests stop on the held-out loss)."""


def method(name: str, unlearn: UnlearnConfig, train: TrainConfig) -> Method:
    """The unlearning method called `name`, configured.

    Raises:
        ConfigError: If `METHODS` has no method `name` and no installed unlearning plug-in has that name.
    """
    if name not in METHODS and name in METHOD_PLUGINS:
        from qmu_core.unlearning.plugin import method_class

        return method_class(name)(unlearn, train)
    built: Method = METHODS.entry(name).load()(unlearn, train)
    return built


def hint(name: str) -> str:
    """What to change when method `name` did not reach its stopping rule."""
    if name not in METHODS and name in METHOD_PLUGINS:
        from qmu_core.unlearning import plugin

        return plugin.hint(name)
    return METHODS.entry(name).hint
