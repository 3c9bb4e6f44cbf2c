"""The expectation-backend interface: ⟨Z_i⟩ of one model circuit for a batch of records.

A backend is built once per model from its `ModelConfig` and owns every routing decision (how
records are packed, which TFQ op runs the forward pass). `QNN` only calls `expectations`
(differentiable, for training) and `predict` (inference).

Inputs are the classical *features* of a batch, shape ``(B, width)``: angles in [0, pi] for
angle encoding (``width = n_qubits``), any real vector of width ``2^n`` for amplitude encoding.
`symbol_values` turns them into the circuit's input-symbol values (`qmu_core.qnn.circuits`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from qmu_core._tf import tf
from qmu_core.config import ModelConfig
from qmu_core.qnn import amplitude, circuits

__all__ = ["ExpectationBackend", "symbol_values"]


def symbol_values(model: ModelConfig, features: tf.Tensor) -> tf.Tensor:
    """Values of the circuit's input symbols for a batch of features, ``(B, n_inputs)``.

    Angle encoding binds the features as they are (tiled per layer with re-uploading);
    amplitude encoding binds the state-preparation angles of `qmu_core.qnn.amplitude`.
    """
    if model.encoding == "amplitude":
        return amplitude.angles_tf(features)
    if model.reupload:
        return tf.tile(features, [1, model.layers])
    return features


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
        self.circuit, self.input_symbols = circuits.build_circuit(
            model.n_qubits, model.layers, encoding=model.encoding, reupload=model.reupload
        )
        self.weight_symbols = circuits.weight_symbols(model.n_qubits, model.layers)

    @abstractmethod
    def expectations(self, features: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """Differentiable ⟨Z_i⟩, shape ``(B, n_qubits)``, w.r.t. `features` and `theta`."""

    def predict(self, features: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """⟨Z_i⟩ for inference (no gradients); backends may take a cheaper route."""
        return tf.stop_gradient(self.expectations(features, theta))

    def __repr__(self) -> str:
        m = self.model
        return f"{type(self).__name__}(n_qubits={m.n_qubits}, layers={m.layers}, encoding={m.encoding!r})"
