"""Plain TFQ: one program per record through `tfq.layers.Expectation` (qsim, Adjoint)."""

from __future__ import annotations

from qmu_core._tf import tf, tfq
from qmu_core.config import ModelConfig
from qmu_core.qnn.backends.base import ExpectationBackend

__all__ = ["PlainTFQBackend"]


class PlainTFQBackend(ExpectationBackend):
    """TFQ's Expectation layer with the Adjoint differentiator, one program per record."""

    name = "tfq"

    def __init__(self, model: ModelConfig) -> None:
        super().__init__(model)
        self._compile()

    def _compile(self) -> None:
        """TFQ's program, symbol names, read-out and Expectation layer for ``circuit`` and its symbols."""
        self.symbol_names = tf.constant([str(s) for s in [*self.input_symbols, *self.weight_symbols]])
        self.program = tfq.convert_to_tensor([self.circuit])
        self.operators = tfq.convert_to_tensor([self.readout])
        self._layer = tfq.layers.Expectation(differentiator=tfq.differentiators.Adjoint())

    def expectations(self, features: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """Differentiable ⟨Z_i⟩ from TFQ's `Expectation` layer (adjoint differentiator)."""
        values = self.symbol_values(features)
        batch = tf.shape(values)[0]
        return self._layer(
            tf.tile(self.program, [batch]),
            symbol_names=self.symbol_names,
            symbol_values=tf.concat([values, tf.tile(theta[None, :], [batch, 1])], axis=1),
            operators=tf.tile(self.operators, [batch, 1]),
        )
