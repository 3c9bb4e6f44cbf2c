"""Unlearning plug-ins: a method from another installed package (entry point group ``qmu.unlearning``).

The contract is the built-in methods' own (`qmu_core.unlearning.base`): the entry point names a
subclass of `Method` with ``reads`` (``"U"``, ``"U, R"`` or ``"R"``: the data it trains on) and
``run(model, request, *, seed, progress=None)``, which changes the model's variables in place
and returns a `Result` (one dict of numbers per pass, ideally with ``forget_acc`` and
``forget_loss`` from `forget_state`; whether it reached ``request.reached``; its circuit
evaluations, counted with `Evals`). It is built as ``cls(unlearn_section, train_section)``, may
read any field of the ``unlearn`` section (its stage is keyed by all of them) and runs under the
retained-accuracy guard and the step-size rule like every method (`qmu_core.unlearning.guard`):
override ``scaled`` if its step size is not ``unlearn.learning_rate``. An optional class attribute
``hint`` says what to change when it does not reach its stopping rule.

`method_class` loads it by its registered name only (`qmu_core.plugins.load`) and returns a
subclass whose ``run`` checks what the plug-in returns and the model it leaves, naming the
plug-in, the fault and the fix.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from qmu_core import plugins
from qmu_core.errors import ConfigError, QMUError
from qmu_core.progress import Progress
from qmu_core.qnn.models import QNN
from qmu_core.unlearning.base import Method, Request, Result

__all__ = ["READS", "check_result", "hint", "method_class"]

READS = ("U", "U, R", "R")
"""What a method's ``reads`` may say."""

_FIX = "Fix the plug-in (the contract: qmu_core.unlearning.plugin), or leave it out of unlearn.methods."


def _bad(name: str, what: str) -> ConfigError:
    return ConfigError(f"Unlearning plug-in {name!r} ({plugins.UNLEARNING}) is unusable: {what}. {_FIX}")


def check_result(name: str, result: object, model: QNN, shapes: dict[str, tuple[int, ...]]) -> Result:
    """`result` if it is a well-formed `Result` and `model`'s variables kept their shapes and are finite."""
    if not isinstance(result, Result):
        raise _bad(name, f"`run` returned {type(result).__name__}, not a qmu_core.unlearning.base.Result")
    if not isinstance(result.history, list) or not all(isinstance(h, dict) for h in result.history):
        raise _bad(name, "`Result.history` must be a list with one dict of numbers per pass")
    for i, record in enumerate(result.history):
        wrong = {k: v for k, v in record.items() if not isinstance(k, str) or not isinstance(v, (int, float))}
        if wrong:
            raise _bad(name, f"pass {i + 1} of `Result.history` holds non-numbers {wrong!r}")
    if not isinstance(result.reached_stop, (bool, np.bool_)):
        raise _bad(name, f"`Result.reached_stop` is {result.reached_stop!r}; set True or False")
    evals = result.circuit_evals
    if isinstance(evals, bool) or not isinstance(evals, (int, np.integer)) or evals < 0:
        raise _bad(name, f"`Result.circuit_evals` is {evals!r}; count them with qmu_core.unlearning.base.Evals")
    for var, value in model.variables.items():
        now = tuple(value.shape)
        if now != shapes[var]:
            raise _bad(name, f"it changed the shape of the model's variable {var!r} from {shapes[var]} to {now}")
        if not np.isfinite(value.numpy()).all():
            raise _bad(name, f"it left non-finite values in the model's variable {var!r}")
    result.reached_stop = bool(result.reached_stop)
    result.circuit_evals = int(evals)
    return result


@functools.cache
def method_class(name: str) -> type[Method]:
    """The installed unlearning plug-in `name` (imports it), its ``run`` checked (module doc).

    Raises:
        ConfigError: If `name` is not an installed unlearning plug-in (nothing is imported), or what it
            registers is not a `Method` subclass with a valid ``reads``.
    """
    loaded: Any = plugins.load(plugins.UNLEARNING, name)
    if not (isinstance(loaded, type) and issubclass(loaded, Method)):
        raise _bad(name, f"its entry point names {loaded!r}, not a subclass of qmu_core.unlearning.base.Method")
    if getattr(loaded, "reads", None) not in READS:
        raise _bad(name, f"`reads` is {getattr(loaded, 'reads', None)!r}; say which data it reads: one of {READS}")

    def run(self: Method, model: QNN, request: Request, *, seed: int, progress: Progress | None = None) -> Result:
        shapes = {var: tuple(value.shape) for var, value in model.variables.items()}
        try:
            result = loaded.run(self, model, request, seed=seed, progress=progress)
        except QMUError:  # QMU's own (a cancel, a config error): as it is
            raise
        except Exception as err:
            raise plugins.failure(plugins.UNLEARNING, name, "run", err) from err
        return check_result(name, result, model, shapes)

    checked: type[Method] = type(loaded.__name__, (loaded,), {"name": name, "run": run, "__module__": __name__})
    return checked


def hint(name: str) -> str:
    """What to change when plug-in `name` did not reach its stopping rule: its ``hint``, or where to look."""
    own = getattr(method_class(name), "hint", "")
    return own if isinstance(own, str) and own else f"See the documentation of the plug-in {name!r} for its settings."
