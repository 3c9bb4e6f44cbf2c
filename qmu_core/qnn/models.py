"""The quantum classifiers: basic QNN and hybrid CNN + QNN (HQNN).

A `QNN` is a classical front end (`qmu_core.qnn.frontend`: identity for the basic QNN, a CNN
for the HQNN), an
expectation backend (`qmu_core.qnn.backends`: ⟨Z_i⟩ of the circuit, through TFQ's qsim ops with
the Adjoint differentiator) and a dense softmax head. The backend is chosen once, at
construction, from ``model.backend`` (or passed in); `QNN` itself never branches on it.

Data enters the circuit only as symbol values (`qmu_core.qnn.encoding`): angles for angle
encoding, state-preparation angles for amplitude encoding. The HQNN's CNN front end (Conv 5x5 -> ReLU -> MaxPool 2 ->
Dense -> LeakyReLU(0.01)) feeds the encoding; TFQ differentiates with respect to symbol
values, so gradients reach the CNN.

Weights are plain named `tf.Variable`s, saved as long Parquet rows (never pickle).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qmu_core import frames
from qmu_core._tf import tf
from qmu_core.config import ModelConfig
from qmu_core.errors import ArtifactError
from qmu_core.qnn.backends import ExpectationBackend, make_backend
from qmu_core.qnn.frontend import glorot, model_front_end

__all__ = ["QNN", "build_model"]


class QNN:
    """A basic QNN or an HQNN with named variables.

    Args:
        model: The model section of the config.
        n_classes: Outputs of the softmax head.
        image_side: Image height/width (HQNN input), e.g. 8 for digits, 28 for MNIST.
        seed: Seed of the initial weights.
        backend: The expectation backend; default `make_backend(model)`.
    """

    def __init__(
        self,
        model: ModelConfig,
        *,
        n_classes: int,
        image_side: int,
        seed: int,
        backend: ExpectationBackend | None = None,
    ) -> None:
        self.cfg = model
        self.n_classes = n_classes
        self.image_side = image_side
        self.backend = backend if backend is not None else make_backend(model)
        self.encoding = self.backend.encoding
        self.front = model_front_end(model)
        self.circuit, self.input_symbols = self.backend.circuit, self.backend.input_symbols
        self.weight_symbols = self.backend.weight_symbols
        n = self.backend.n_outputs  # values the head reads: ⟨Z_i⟩ per qubit, or a plug-in's read-out

        rng = np.random.default_rng(seed)
        n_w = len(self.weight_symbols)
        theta = rng.normal(0.0, 1.0, size=n_w) if model.init == "normal" else rng.uniform(-np.pi, np.pi, size=n_w)
        init: dict[str, np.ndarray] = {
            "theta": theta.astype(np.float32),
            "head_w": glorot(rng, (n, n_classes), n, n_classes),
            "head_b": np.zeros(n_classes, dtype=np.float32),
        }
        init |= self.front.initial_variables(rng, model, image_side)
        self.variables: dict[str, tf.Variable] = {k: tf.Variable(v, name=k, dtype=tf.float32) for k, v in init.items()}

    # ------------------------------------------------------------------ forward pass

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        """Variables in a fixed order (the optimizer's order)."""
        return [self.variables[k] for k in sorted(self.variables)]

    def front_end(self, inputs: tf.Tensor) -> tf.Tensor:
        """Classical part: features (basic QNN) or CNN output (HQNN), shape (B, width)."""
        return self.front.forward(self.variables, inputs, self.cfg, self.image_side)

    @tf.autograph.experimental.do_not_convert
    def expectations(self, inputs: tf.Tensor) -> tf.Tensor:
        """⟨Z_i⟩ for every qubit, shape (B, n_qubits), from the backend (differentiable).

        Differentiable with respect to every variable, including the CNN front end (HQNN).
        """
        return self.backend.expectations(self.front_end(inputs), self.variables["theta"])

    def head_logits(self, z: tf.Tensor) -> tf.Tensor:
        """The head's logits from ⟨Z⟩: ``z @ head_w + head_b``."""
        return z @ self.variables["head_w"] + self.variables["head_b"]

    def head(self, z: tf.Tensor) -> tf.Tensor:
        """Class probabilities from ⟨Z⟩: ``softmax(z @ head_w + head_b)``."""
        return tf.nn.softmax(self.head_logits(z))

    @tf.autograph.experimental.do_not_convert
    def logits(self, inputs: tf.Tensor) -> tf.Tensor:
        """The head's logits, shape (B, n_classes) (differentiable)."""
        return self.head_logits(self.expectations(inputs))

    @tf.autograph.experimental.do_not_convert
    def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
        """Class probabilities, shape (B, n_classes)."""
        return self.head(self.expectations(inputs))

    @tf.autograph.experimental.do_not_convert
    def predict_expectations(self, inputs: tf.Tensor) -> tf.Tensor:
        """⟨Z_i⟩ per qubit without gradients (inference), shape (B, n_qubits)."""
        inputs = tf.convert_to_tensor(inputs, tf.float32)
        return tf.stop_gradient(self.backend.predict(self.front_end(inputs), self.variables["theta"]))

    @tf.autograph.experimental.do_not_convert
    def predict_probs(self, inputs: tf.Tensor) -> tf.Tensor:
        """Class probabilities without gradients (inference), shape (B, n_classes).

        Same numbers as `__call__`, through the backend's inference route.
        """
        return tf.stop_gradient(self.head(self.predict_expectations(inputs)))

    # ------------------------------------------------------------------ weights I/O

    def weights_frame(self, model_id: str) -> pd.DataFrame:
        """Long form for the `model` artifact: one row per variable."""
        rows = frames.tensor_rows({k: self.variables[k].numpy() for k in sorted(self.variables)}, dtype=np.float32)
        return rows.assign(model_id=model_id)

    def load_frame(self, frame: pd.DataFrame) -> QNN:
        """Set every variable from a `weights_frame`; shapes must match exactly."""
        found = frames.arrays(frame, dtype=np.float32)
        if set(found) != set(self.variables):
            raise ArtifactError(
                f"Saved weights have variables {sorted(found)}, but this model "
                f"({self.cfg.kind}, {self.cfg.encoding}) has {sorted(self.variables)}. The "
                "weights come from a different model config."
            )
        for name, var in self.variables.items():
            shape = found[name].shape
            if shape != tuple(var.shape):
                raise ArtifactError(
                    f"Saved variable {name!r} has shape {shape}, the model expects "
                    f"{tuple(var.shape)}; the weights come from a different model config."
                )
            var.assign(found[name])
        return self


def build_model(model: ModelConfig, *, n_classes: int, image_side: int, seed: int) -> QNN:
    """Construct a freshly initialized QNN for `model` with its configured backend."""
    return QNN(model, n_classes=n_classes, image_side=image_side, seed=seed)
