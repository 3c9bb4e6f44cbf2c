"""The expectation-backend interface: ⟨Z_i⟩ of one model circuit for a batch of records.

A backend is built once per model from its `ModelConfig` and owns every routing decision (how
records are packed, which TFQ op runs the forward pass). `QNN` only calls `expectations`
(differentiable, for training) and `predict` (inference).

Inputs are the classical *features* of a batch, shape ``(B, width)``: angles in [0, pi] for
angle encoding (``width = n_qubits``), any real vector of width ``2^n`` for amplitude encoding.
The model's `qmu_core.qnn.encoding.Encoding` (``backend.encoding``) turns them into the circuit's
input-symbol values and encoded states.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from qmu_core._tf import tf
from qmu_core.config import ModelConfig
from qmu_core.errors import ConfigError
from qmu_core.qnn import circuits
from qmu_core.qnn.encoding import model_encoding

if TYPE_CHECKING:
    import cirq

__all__ = ["ExpectationBackend"]


class ExpectationBackend(ABC):
    """⟨Z_i⟩ on every qubit of the model circuit `circuits.build_circuit(model)`.

    Args:
        model: The model section; fixes qubits, layers, encoding and re-uploading.
    """

    name: str = ""
    """Registry name (`qmu_core.qnn.backends.BACKENDS`)."""

    def __init__(self, model: ModelConfig) -> None:
        self.model = model
        self.n_qubits = model.n_qubits
        self.encoding = model_encoding(model)
        self.circuit, self.input_symbols = circuits.build_circuit(
            model.n_qubits, model.layers, encoding=model.encoding, reupload=model.reupload
        )
        self.weight_symbols = circuits.weight_symbols(model.n_qubits, model.layers)
        self.readout: list[cirq.PauliString | cirq.PauliSum] = list(
            circuits.readout_ops(circuits.qubits(model.n_qubits))
        )

    @property
    def n_outputs(self) -> int:
        """Values per record the head reads: one per read-out observable (⟨Z_i⟩ per qubit here)."""
        return len(self.readout)

    def symbol_values(self, features: tf.Tensor) -> tf.Tensor:
        """Values of the circuit's input symbols for a batch of features, ``(B, n_inputs)``."""
        return self.encoding.values_tf(features, self.model)

    @abstractmethod
    def expectations(self, features: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """Differentiable ⟨Z_i⟩, shape ``(B, n_qubits)``, w.r.t. `features` and `theta`."""

    def expectations_many(self, features: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """Differentiable ⟨Z_i⟩ of M models of this circuit, each with its own weights.

        Args:
            features: ``(M, B, width)``, model m's batch in row m (M known when tracing).
            theta: ``(M, n_weights)``, model m's weights in row m.

        Returns:
            ``(M, B, n_qubits)``. This default calls `expectations` once per model; backends
            that can batch models into one op call (``tfq_packed``) override it.
        """
        features = tf.convert_to_tensor(features, tf.float32)
        n_models = features.shape[0]
        if n_models is None:
            raise ConfigError(
                f"{type(self).__name__}.expectations_many loops over models and needs their number (the "
                "leading axis of `features`) known when tracing; pass a tensor with a static first dimension."
            )
        return tf.stack([self.expectations(features[m], theta[m]) for m in range(n_models)])

    def predict(self, features: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """⟨Z_i⟩ for inference (no gradients); backends may take a cheaper route."""
        return tf.stop_gradient(self.expectations(features, theta))

    def __repr__(self) -> str:
        m = self.model
        return f"{type(self).__name__}(n_qubits={m.n_qubits}, layers={m.layers}, encoding={m.encoding!r})"
