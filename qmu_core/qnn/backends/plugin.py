"""Model plug-ins (`qmu_core.plugins`): their circuit through TFQ's Expectation layer (qsim, Adjoint).

The circuit, its input and weight symbols and its read-out observables come from the plug-in's
`qmu_core.plugins.CircuitModel`; each record's features are bound to the input symbols as they
are (angles in [0, pi], one per symbol), its weights ``theta`` to the weight symbols. The output
is one expectation per read-out observable, shape ``(B, len(readout))``.
"""

from __future__ import annotations

from qmu_core import plugins
from qmu_core._tf import tf
from qmu_core.config import ModelConfig
from qmu_core.errors import ConfigError
from qmu_core.qnn.backends.plain import PlainTFQBackend
from qmu_core.qnn.encoding import ANGLE

__all__ = ["PluginTFQBackend"]


class PluginTFQBackend(PlainTFQBackend):
    """A model plug-in's circuit through TFQ's Expectation layer with the Adjoint differentiator.

    Raises:
        ConfigError: If ``model.kind`` is not an installed model plug-in, or its circuit is unusable.
    """

    name = "plugin_tfq"

    def __init__(self, model: ModelConfig) -> None:
        if not model.is_plugin:
            raise ConfigError(f"PluginTFQBackend runs model plug-ins; model.kind={model.kind!r} is built in.")
        built = plugins.circuit_model(model)
        self.model = model
        self.n_qubits = built.n_qubits
        self.encoding = ANGLE
        self.circuit = built.circuit
        self.input_symbols = list(built.input_symbols)
        self.weight_symbols = list(built.weight_symbols)
        self.readout = list(built.readout)
        try:
            self._compile()
        except (ValueError, TypeError) as err:
            raise ConfigError(
                f"Model plug-in {model.kind!r}: TFQ cannot run its circuit or read-out ({err}); use gates and "
                "observables TFQ serializes (Pauli powers, rx/ry/rz, CZ, CNOT, ...)."
            ) from err

    def symbol_values(self, features: tf.Tensor) -> tf.Tensor:
        """The features themselves: feature i is the angle bound to input symbol i."""
        return tf.convert_to_tensor(features, tf.float32)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.model.kind!r}, n_qubits={self.n_qubits})"
