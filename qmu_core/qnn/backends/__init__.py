"""Expectation backends: how ⟨Z_i⟩ of the model circuit is computed (one interface, `base`).

* ``tfq`` (`plain`): TFQ's Expectation layer, one program per record;
* ``tfq_packed`` (`packed`): many records per TFQ program, same numbers, several times faster;
  models above `packed.MAX_PACKED_SYSTEM_QUBITS` qubits fall back to ``tfq``;
* ``dense`` (`dense`): a batched state vector in plain TF, the speed and correctness reference;
* model plug-ins (`qmu_core.plugins`, ``model.kind`` not built in) always run on `plugin`'s
  `PluginTFQBackend` (TFQ Expectation + Adjoint on the plug-in's circuit and read-out); the packed
  and dense backends assume QMU's own ansatz.

`make_backend` is the one place a model's route is chosen. A new backend (for example a Cirq
sampler) is one module with an `ExpectationBackend` subclass plus one line in `BACKENDS`.
"""

from __future__ import annotations

from qmu_core.config import ModelConfig
from qmu_core.errors import ConfigError
from qmu_core.qnn.backends.base import ExpectationBackend
from qmu_core.qnn.backends.dense import DenseBackend
from qmu_core.qnn.backends.packed import PackedTFQBackend, packing_ancillas
from qmu_core.qnn.backends.plain import PlainTFQBackend
from qmu_core.qnn.backends.plugin import PluginTFQBackend
from qmu_core.qnn.encoding import model_encoding

__all__ = ["BACKENDS", "ExpectationBackend", "PluginTFQBackend", "make_backend"]

BACKENDS: dict[str, type[ExpectationBackend]] = {
    "tfq": PlainTFQBackend,
    "tfq_packed": PackedTFQBackend,
    "dense": DenseBackend,
}


def make_backend(model: ModelConfig, name: str | None = None) -> ExpectationBackend:
    """The backend for `model`: `name`, else ``model.backend``.

    ``tfq_packed`` falls back to ``tfq`` for models too large to pack. A model plug-in runs on
    `PluginTFQBackend` whatever ``model.backend`` says; asking for another backend by `name` is refused.

    Raises:
        ConfigError: For an unknown backend name, or a named backend a plug-in model cannot use.
    """
    if model.is_plugin:
        if name not in (None, "tfq", PluginTFQBackend.name):
            raise ConfigError(
                f"model.kind={model.kind!r} is a model plug-in; it runs on TFQ's Expectation layer "
                f"({PluginTFQBackend.name}), not on the {name!r} backend, which assumes QMU's own ansatz."
            )
        return PluginTFQBackend(model)
    name = name or model.backend
    if name not in BACKENDS:
        raise ConfigError(f"Unknown expectation backend {name!r}; choose one of {', '.join(BACKENDS)}.")
    if name == "tfq_packed" and packing_ancillas(model.n_qubits, model_encoding(model)) == 0:
        name = "tfq"
    return BACKENDS[name](model)
