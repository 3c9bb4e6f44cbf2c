"""How a record's features enter the circuit: angle or amplitude encoding, one object each.

An `Encoding` owns every rule that depends on the encoding, for every consumer:

* the features a model reads (`width`) and how the data stage scales its PCA coordinates
  (`scale`), or how the HQNN's CNN output becomes features (`squash`);
* the circuit's input symbols and the gates that load them (`input_symbols`, `prepare`;
  `qmu_core.qnn.circuits.build_circuit` puts the ansatz after them);
* features -> symbol values, in TensorFlow for training (`values_tf`) and in NumPy for the
  hardware path (`values`): the one rule, written once per encoding;
* the encoded state as a dense vector (`states_tf`): the dense reference backend, the packed
  backend's unitary route and the QFI (`qmu_core.unlearning.qfi`) all read it;
* the packed backend's settings (`ancillas`, `unitary_training`) and whether a device can bind
  the inputs record by record (`single_qubit_inputs`);
* the export recipe's steps (`pca_recipe`, `cnn_recipe`).

The encodings are `ANGLE` and `AMPLITUDE`; `encoding_named` / `model_encoding` look them up. A new
encoding is one subclass and one entry in `ENCODINGS`.

This module imports no TensorFlow, Cirq or sympy at import time (the study side uses it: the data
stage and every `qmu run` process read `width` and `scale`, and Cirq's import costs seconds);
`values_tf`, `states_tf` and `squash` import TensorFlow when called, inside a model's forward
pass, and the circuit builders import Cirq and sympy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from qmu_core.errors import ConfigError
from qmu_core.numeric import safe_divisor
from qmu_core.qnn import amplitude

if TYPE_CHECKING:
    import cirq
    import sympy

    from qmu_core.config import ModelConfig

__all__ = ["AMPLITUDE", "ANGLE", "ENCODINGS", "AmplitudeEncoding", "AngleEncoding", "Encoding", "model_encoding"]


class Encoding(ABC):
    """How features enter the circuit (module doc). Instances are stateless; use `ENCODINGS`."""

    name: ClassVar[str]
    """``model.encoding``'s value."""

    ancillas: ClassVar[int]
    """Ancillas of the packed backend's record register (``2^ancillas`` records per program)."""

    unitary_training: ClassVar[bool]
    """Whether the packed backend's training forward may use the weight-ansatz unitary on the
    encoded states (`qmu_core.qnn.backends.packed.unitary_forward`)."""

    single_qubit_inputs: ClassVar[bool]
    """Every input symbol sits in a single-qubit rotation, so a device compiles the circuit once
    and binds each record's rotations (`qmu_core.hardware`); else each record compiles alone."""

    pca_recipe: ClassVar[str]
    """The export recipe's step from PCA coordinates ``z`` to what the circuit reads (basic QNN)."""

    cnn_recipe: ClassVar[str]
    """The export recipe's step from the CNN output ``h`` to what the circuit reads (HQNN)."""

    @abstractmethod
    def width(self, n_qubits: int) -> int:
        """Features per record a model on `n_qubits` qubits reads."""

    @abstractmethod
    def input_symbols(self, n_qubits: int, layers: int = 1, *, reupload: bool = False) -> list[sympy.Symbol]:
        """The circuit's input symbols, in the order of `values` / `values_tf`."""

    @abstractmethod
    def prepare(self, qs: Sequence[cirq.Qid], symbols: Sequence[sympy.Symbol]) -> cirq.Circuit:
        """The gates that load the inputs `symbols` (one block) on the qubits `qs`."""

    @abstractmethod
    def _values(self, x: np.ndarray, model: ModelConfig) -> np.ndarray:
        """`values` after the shape check."""

    @abstractmethod
    def values_tf(self, features: Any, model: ModelConfig) -> Any:
        """Values of the input symbols for a batch ``(B, width)``.

        A TensorFlow tensor ``(B, n_inputs)``, differentiable with respect to `features` (training, TFQ).
        """

    @abstractmethod
    def states_tf(self, features: Any) -> Any:
        """The states the encoding prepares, without re-uploading.

        A ``(B, 2^n)`` real float32 tensor (qubit 0 the most significant bit of the basis index).
        """

    @abstractmethod
    def scale(self, z: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """PCA coordinates ``z`` ``(N, k)`` -> features, given the training records' bounds."""

    @abstractmethod
    def squash(self, h: Any) -> Any:
        """The HQNN's CNN output ``h`` (TensorFlow) -> the features the encoding reads."""

    def values(self, features: np.ndarray, model: ModelConfig) -> np.ndarray:
        """Values of the input symbols per record, ``(B, n_inputs)`` float64 (NumPy).

        The hardware path's twin of `values_tf`, same rule.

        Raises:
            ConfigError: If `features` is not ``(B, width)`` with the width the encoding reads.
        """
        x = np.asarray(features, dtype=np.float64)
        width = self.width(model.n_qubits)
        if x.ndim != 2 or x.shape[1] != width:
            raise ConfigError(
                f"{self.name} encoding on {model.n_qubits} qubits reads {width} features per record, got an "
                f"array of shape {x.shape}; pass the split's `x` column stacked as (records, {width})."
            )
        return self._values(x, model)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class AngleEncoding(Encoding):
    """One feature per qubit as ``Ry(x_i)``, features in [0, pi].

    With data re-uploading the features are loaded again before every ansatz layer (``x_{l}_{i}``).
    """

    name = "angle"
    ancillas = 4
    unitary_training = False
    single_qubit_inputs = True
    pca_recipe = "x = clip((z - lo) / (hi - lo), 0, 1) * pi; zero-pad to n_qubits; bind x_i (or x_l_i)."
    cnn_recipe = "x = pi * sigmoid(h), bind x_i (or x_l_i)."

    def width(self, n_qubits: int) -> int:
        """One feature per qubit."""
        return n_qubits

    def input_symbols(self, n_qubits: int, layers: int = 1, *, reupload: bool = False) -> list[sympy.Symbol]:
        """``x_<i>`` per qubit, or ``x_<l>_<i>`` per layer and qubit with re-uploading."""
        if not reupload:
            import sympy  # here, not at import: the study side (splits, features) needs no circuit

            return [sympy.Symbol(f"x_{i}") for i in range(n_qubits)]
        import sympy

        return [sympy.Symbol(f"x_{l}_{i}") for l in range(layers) for i in range(n_qubits)]

    def prepare(self, qs: Sequence[cirq.Qid], symbols: Sequence[sympy.Symbol]) -> cirq.Circuit:
        """One ``Ry`` layer loading `symbols` on `qs` (`layer`)."""
        import cirq

        return cirq.Circuit(self.layer(qs, symbols))

    @staticmethod
    def layer(qs: Sequence[cirq.Qid], symbols: Sequence[sympy.Symbol]) -> list[cirq.Operation]:
        """``Ry(symbol)`` on every qubit: one block of angle encoding as operations."""
        import cirq

        return [cirq.ry(s).on(q) for q, s in zip(qs, symbols, strict=True)]

    def _values(self, x: np.ndarray, model: ModelConfig) -> np.ndarray:
        return np.tile(x, (1, model.layers)) if model.reupload else x

    def values_tf(self, features: Any, model: ModelConfig) -> Any:
        """The features themselves, tiled once per layer with re-uploading."""
        from qmu_core._tf import tf

        return tf.tile(features, [1, model.layers]) if model.reupload else features

    def states_tf(self, features: Any) -> Any:
        """``prod_q Ry(x_q)|0>``."""
        from qmu_core._tf import tf

        angles = tf.convert_to_tensor(features, tf.float32)
        c, s = tf.cos(angles / 2), tf.sin(angles / 2)
        batch = tf.shape(angles)[0]
        psi = tf.ones([batch, 1], dtype=angles.dtype)
        for i in range(int(angles.shape[-1])):
            psi = tf.reshape(psi[:, :, None] * tf.stack([c[:, i], s[:, i]], 1)[:, None, :], [batch, -1])
        return psi

    def scale(self, z: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Min-max scaled to [0, pi] on the training records' bounds (and clipped)."""
        return np.clip((z - lo) / safe_divisor(hi - lo), 0.0, 1.0) * np.pi

    def squash(self, h: Any) -> Any:
        """``pi * sigmoid(h)``: angles in (0, pi), like the scaled PCA features."""
        from qmu_core._tf import tf

        return np.pi * tf.sigmoid(h)


class AmplitudeEncoding(Encoding):
    """``2^n`` features as the amplitudes of ``n`` qubits (normalized; ``|0...0>`` for zero).

    Loaded by the state-preparation circuit of `qmu_core.qnn.amplitude`.
    """

    name = "amplitude"
    ancillas = 2  # packing simulates 255 controlled gates per record
    unitary_training = True
    single_qubit_inputs = False
    pca_recipe = "v = z zero-padded to 2^n, L2-normalized (all-zero -> |0..0>): the initial state of ansatz.json."
    cnn_recipe = "v = h / |h| as the initial state of ansatz.json."

    def width(self, n_qubits: int) -> int:
        """``2^n`` features, one amplitude each."""
        return 2**n_qubits

    def input_symbols(self, n_qubits: int, layers: int = 1, *, reupload: bool = False) -> list[sympy.Symbol]:
        """``a_0 .. a_{2^n - 2}``, the state preparation's angles (no re-uploading)."""
        if reupload:
            raise ConfigError("Amplitude encoding prepares the state once; it has no data re-uploading.")
        import sympy

        return [sympy.Symbol(f"a_{i}") for i in range(2**n_qubits - 1)]

    def prepare(self, qs: Sequence[cirq.Qid], symbols: Sequence[sympy.Symbol]) -> cirq.Circuit:
        """The state-preparation circuit of `qmu_core.qnn.amplitude`, checked to read `symbols`."""
        circuit, own = amplitude.state_prep_circuit(qs)
        if list(own) != list(symbols):
            raise ConfigError(
                f"Amplitude encoding on {len(qs)} qubits reads the symbols a_0.., not {list(symbols)[:2]}.."
            )
        return circuit

    def _values(self, x: np.ndarray, model: ModelConfig) -> np.ndarray:
        return amplitude.angles_np(x)

    def values_tf(self, features: Any, model: ModelConfig) -> Any:
        """The state preparation's angles of the features (`qmu_core.qnn.amplitude.angles_tf`)."""
        return amplitude.angles_tf(features)

    def states_tf(self, features: Any) -> Any:
        """``x / ||x||`` (normalized in float64), ``|0...0>`` for ``x = 0``.

        Exactly what `qmu_core.qnn.amplitude.state_prep_circuit` prepares from `values_tf`.
        """
        from qmu_core._tf import tf

        x = tf.cast(features, tf.float64)
        norm = tf.norm(x, axis=1, keepdims=True)
        e0 = tf.one_hot(tf.zeros([tf.shape(x)[0]], tf.int32), tf.shape(x)[1], dtype=tf.float64)
        safe = tf.where(norm > 0, norm, tf.ones_like(norm))
        return tf.cast(tf.where(norm > 0, x / safe, e0), tf.float32)

    def scale(self, z: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Unchanged (zero-padded to ``2^n`` by the caller); the circuit normalizes."""
        return z

    def squash(self, h: Any) -> Any:
        """Unchanged: the circuit normalizes."""
        return h


ANGLE = AngleEncoding()
AMPLITUDE = AmplitudeEncoding()

ENCODINGS: dict[str, Encoding] = {e.name: e for e in (ANGLE, AMPLITUDE)}
"""Every encoding by ``model.encoding`` value."""


def encoding_named(name: str) -> Encoding:
    """The encoding called `name`.

    Raises:
        ConfigError: For an unknown name.
    """
    if name not in ENCODINGS:
        raise ConfigError(f"encoding={name!r} is not supported; use {' or '.join(repr(n) for n in ENCODINGS)}.")
    return ENCODINGS[name]


def model_encoding(model: ModelConfig) -> Encoding:
    """The encoding of the model section `model`."""
    return encoding_named(model.encoding)
