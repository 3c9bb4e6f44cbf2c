"""The quantum classifiers: basic QNN and hybrid CNN + QNN (HQNN), in TFQ with qsim.

A model is a circuit (`qmu_core.circuits`) evaluated by TFQ's native qsim ops with the Adjoint
differentiator, then a dense softmax head. `ModelConfig.backend` picks how: ``"tfq"`` is the
plain Expectation layer with one program per record; ``"tfq_packed"`` (default) packs several
records into one program behind an ancilla record register (`qmu_core.packed`: same numbers,
several times faster) and falls back to the plain layer above
`packed.MAX_PACKED_SYSTEM_QUBITS` qubits. `QNN.predict_probs` is the gradient-free inference
route (one TFQ unitary of the weight ansatz for the whole batch where exact).

Data enters the circuit only as symbol values: angles for angle encoding, state-preparation
angles for amplitude encoding. The HQNN adds a CNN front end (Conv 5x5 -> ReLU -> MaxPool 2 ->
Dense -> LeakyReLU(0.01)) whose output is encoded; TFQ differentiates with respect to symbol
values, so gradients reach the CNN.

Weights are plain named `tf.Variable`s, saved as long Parquet rows (never pickle).
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from qmu_core import circuits, packed
from qmu_core._tf import tf, tfq
from qmu_core.config import ModelConfig
from qmu_core.errors import ArtifactError

__all__ = ["QNN", "build_model"]


def _glorot(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


class QNN:
    """A basic QNN or an HQNN with named variables.

    Args:
        model: The model section of the config.
        n_classes: Outputs of the softmax head.
        n_features: Width of the reduced feature vector (basic QNN input).
        image_side: Image height/width (HQNN input), e.g. 8 for digits, 28 for MNIST.
        seed: Seed of the initial weights.
    """

    def __init__(
        self,
        model: ModelConfig,
        *,
        n_classes: int,
        n_features: int,
        image_side: int,
        seed: int,
    ) -> None:
        self.cfg = model
        self.n_classes = n_classes
        self.n_features = n_features
        self.image_side = image_side
        n = model.n_qubits
        self.circuit, self.input_symbols = circuits.build_circuit(
            n, model.layers, encoding=model.encoding, reupload=model.reupload
        )
        self.weight_symbols = circuits.weight_symbols(n, model.layers)
        self.symbol_names = tf.constant(
            [str(s) for s in self.input_symbols] + [str(s) for s in self.weight_symbols]
        )
        self._program = tfq.convert_to_tensor([self.circuit])
        self._ops = tfq.convert_to_tensor([circuits.readout_ops(circuits.qubits(n))])
        self._expectation = tfq.layers.Expectation(differentiator=tfq.differentiators.Adjoint())
        self._packer: packed.PackedCircuit | None = None  # built on first use

        rng = np.random.default_rng(seed)
        n_w = len(self.weight_symbols)
        if model.init == "normal":
            theta = rng.normal(0.0, 1.0, size=n_w)
        else:
            theta = rng.uniform(-np.pi, np.pi, size=n_w)
        init: dict[str, np.ndarray] = {
            "theta": theta.astype(np.float32),
            "head_w": _glorot(rng, (n, n_classes), n, n_classes),
            "head_b": np.zeros(n_classes, dtype=np.float32),
        }
        if model.kind == "hqnn":
            f = model.cnn_filters
            pooled = (image_side // 2) ** 2 * f
            width = 2**n if model.encoding == "amplitude" else len(self.input_symbols)
            init |= {
                "conv_k": _glorot(rng, (5, 5, 1, f), 25, 25 * f),
                "conv_b": np.zeros(f, dtype=np.float32),
                "dense_w": _glorot(rng, (pooled, width), pooled, width),
                "dense_b": np.zeros(width, dtype=np.float32),
            }
        self.variables: dict[str, tf.Variable] = {
            k: tf.Variable(v, name=k, dtype=tf.float32) for k, v in init.items()
        }

    # ------------------------------------------------------------------ forward pass

    @property
    def trainable_variables(self) -> list[tf.Variable]:
        """Variables in a fixed order (the optimizer's order)."""
        return [self.variables[k] for k in sorted(self.variables)]

    def front_end(self, inputs: tf.Tensor) -> tf.Tensor:
        """Classical part: features (basic QNN) or CNN output (HQNN), shape (B, width)."""
        if self.cfg.kind == "basic_qnn":
            return inputs
        side = self.image_side
        img = tf.reshape(inputs, (-1, side, side, 1))
        h = tf.nn.relu(tf.nn.conv2d(img, self.variables["conv_k"], 1, "SAME") + self.variables["conv_b"])
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.reshape(h, (tf.shape(h)[0], -1))
        h = tf.nn.leaky_relu(h @ self.variables["dense_w"] + self.variables["dense_b"], alpha=0.01)
        if self.cfg.encoding == "angle":
            h = np.pi * tf.sigmoid(h)  # angles in (0, pi), like the scaled PCA features
        return h

    def circuit_inputs(self, features: tf.Tensor) -> tf.Tensor:
        """Symbol values of the encoding for a batch of features, shape (B, n_inputs)."""
        if self.cfg.encoding == "amplitude":
            from qmu_core import amplitude

            return amplitude.angles_tf(features)
        if self.cfg.reupload:
            return tf.tile(features, [1, self.cfg.layers])
        return features

    @property
    def packs_records(self) -> bool:
        """True if expectations go through `qmu_core.packed` (backend and size allow it)."""
        cfg = self.cfg
        return cfg.backend == "tfq_packed" and packed.packing_ancillas(cfg.n_qubits, cfg.encoding) > 0

    def _packed_circuit(self) -> packed.PackedCircuit:
        if self._packer is None:
            n = self.cfg.n_qubits
            self._packer = packed.PackedCircuit(
                n_qubits=n,
                layers=self.cfg.layers,
                encoding=self.cfg.encoding,
                reupload=self.cfg.reupload,
                n_ancillas=packed.packing_ancillas(n, self.cfg.encoding),
                split_gradient=packed.split_gradient(self.cfg.encoding),
            )
        return self._packer

    def _plain_expectations(self, values: tf.Tensor) -> tf.Tensor:
        batch = tf.shape(values)[0]
        theta = tf.tile(self.variables["theta"][None, :], [batch, 1])
        return self._expectation(
            tf.tile(self._program, [batch]),
            symbol_names=self.symbol_names,
            symbol_values=tf.concat([values, theta], axis=1),
            operators=tf.tile(self._ops, [batch, 1]),
        )

    @tf.autograph.experimental.do_not_convert
    def expectations(self, inputs: tf.Tensor) -> tf.Tensor:
        """⟨Z_i⟩ for every qubit, shape (B, n_qubits), through TFQ's qsim ops (Adjoint).

        Differentiable with respect to every variable, including the CNN front end (HQNN).
        """
        features = self.front_end(inputs)
        values = self.circuit_inputs(features)
        if not self.packs_records:
            return self._plain_expectations(values)
        states = packed.amplitude_states(features) if self.cfg.encoding == "amplitude" else None
        return self._packed_circuit().expectations(values, self.variables["theta"], states)

    @tf.autograph.experimental.do_not_convert
    def __call__(self, inputs: tf.Tensor) -> tf.Tensor:
        """Class probabilities, shape (B, n_classes)."""
        z = self.expectations(inputs)
        return tf.nn.softmax(z @ self.variables["head_w"] + self.variables["head_b"])

    @tf.autograph.experimental.do_not_convert
    def predict_probs(self, inputs: tf.Tensor) -> tf.Tensor:
        """Class probabilities without gradients (inference), shape (B, n_classes).

        Same numbers as `__call__`. With the ``tfq_packed`` backend the circuit part is one TFQ
        unitary of the weight ansatz applied to all encoded states of the batch (angle encoding
        without re-uploading and amplitude encoding, up to 10 qubits), else the packed state op;
        the ``tfq`` backend uses the plain Expectation layer. Nothing here is differentiable.
        """
        inputs = tf.convert_to_tensor(inputs, tf.float32)
        if not self.packs_records:
            return tf.stop_gradient(self(inputs))
        features = self.front_end(inputs)
        cfg = self.cfg
        if cfg.encoding == "amplitude" and packed.unitary_forward(cfg.n_qubits, cfg.encoding, False, training=False):
            values = None  # the unitary route needs the amplitudes only, not the preparation angles
        else:
            values = self.circuit_inputs(features)
        states = packed.amplitude_states(features) if cfg.encoding == "amplitude" else None
        z = self._packed_circuit().predict(values, self.variables["theta"], states)
        return tf.stop_gradient(tf.nn.softmax(z @ self.variables["head_w"] + self.variables["head_b"]))

    # ------------------------------------------------------------------ weights I/O

    def weights_frame(self, model_id: str) -> pd.DataFrame:
        """Long form for the `model` artifact: one row per variable."""
        names = sorted(self.variables)
        return pd.DataFrame(
            {
                "model_id": model_id,
                "variable": names,
                "shape": [list(self.variables[k].shape) for k in names],
                "values": [self.variables[k].numpy().ravel() for k in names],
            }
        )

    def load_frame(self, frame: pd.DataFrame) -> QNN:
        """Set every variable from a `weights_frame`; shapes must match exactly."""
        found = {r.variable: r for r in frame.itertuples()}
        if set(found) != set(self.variables):
            raise ArtifactError(
                f"Saved weights have variables {sorted(found)}, but this model "
                f"({self.cfg.kind}, {self.cfg.encoding}) has {sorted(self.variables)}. The "
                "weights come from a different model config."
            )
        for name, var in self.variables.items():
            shape = tuple(int(s) for s in found[name].shape)
            if shape != tuple(var.shape):
                raise ArtifactError(
                    f"Saved variable {name!r} has shape {shape}, the model expects "
                    f"{tuple(var.shape)}; the weights come from a different model config."
                )
            var.assign(np.asarray(found[name].values, dtype=np.float32).reshape(shape))
        return self


def build_model(
    model: ModelConfig, *, n_classes: int, n_features: int, image_side: int, seed: int
) -> QNN:
    """Construct a freshly initialized QNN for `model`."""
    return QNN(model, n_classes=n_classes, n_features=n_features, image_side=image_side, seed=seed)
