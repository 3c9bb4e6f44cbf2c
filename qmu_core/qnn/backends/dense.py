"""A dense, batched state-vector implementation of the QNN circuit in plain TensorFlow.

This is the *reference* the benchmark compares TFQ against (and a third cross-check of the
circuit's meaning in tests), as the `dense` expectation backend. QMU trains with TFQ's qsim
ops; `bench/train_speed.py` builds a `QNN` with this backend to time the dense limit.

Conventions match `qmu_core.circuits`: qubit 0 is the most significant bit, one layer is
``PhasedX(phase=w0/pi, exponent=w1/pi)`` then ``Z**(w2/pi)`` on every qubit and then the CNOT ring
``0->1->...->n-1->0``; encoding is ``Ry(x_i)`` per qubit (angle) or the normalized 2^n
feature vector as the initial state (amplitude). Global phases are dropped; they do not change
any expectation value.
"""

from __future__ import annotations

import numpy as np

from qmu_core._tf import tf
from qmu_core.config import ModelConfig
from qmu_core.errors import ConfigError
from qmu_core.qnn import circuits
from qmu_core.qnn.backends.base import ExpectationBackend

__all__ = ["DenseBackend", "cnot_ring_permutation"]


def cnot_ring_permutation(n: int) -> np.ndarray:
    """Index map of the CNOT ring: ``new_state = old_state[perm]``."""
    pairs = [(0, 1), (1, 0)] if n == 2 else [(i, (i + 1) % n) for i in range(n)]
    perm = np.arange(2**n)
    for c, t in pairs:
        bits_c = (perm >> (n - 1 - c)) & 1
        perm = perm ^ (bits_c << (n - 1 - t))
    # `perm` maps each output basis index through the ring; a permutation applied as a gather
    # needs the inverse map (where each output amplitude comes from).
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(2**n)
    return inverse


class DenseBackend(ExpectationBackend):
    """⟨Z_i⟩ of the model circuit, batched, differentiable by TF autodiff (complex64).

    Args:
        model: The model section; angle (without re-uploading) or amplitude encoding.

    Raises:
        ConfigError: For data re-uploading, which this reference does not implement.
    """

    name = "dense"

    def __init__(self, model: ModelConfig) -> None:
        if model.reupload:
            raise ConfigError(
                "The dense reference backend has no data re-uploading; use model.backend='tfq' or "
                "'tfq_packed' for model.reupload=true."
            )
        super().__init__(model)
        self.n = model.n_qubits
        self.layers = model.layers
        self._perm = tf.constant(cnot_ring_permutation(self.n), dtype=tf.int32)
        self._zsign = tf.constant(circuits.z_signs(self.n))

    def initial_state(self, x: tf.Tensor) -> tf.Tensor:
        """Encoded states (B, 2^n) complex64."""
        return tf.cast(self.encoding.states_tf(x), tf.complex64)

    def layer_unitaries(self, theta: tf.Tensor) -> tf.Tensor:
        """Single-qubit part of every layer as one 2^n x 2^n matrix, shape (L, 2^n, 2^n)."""
        w = tf.reshape(tf.cast(theta, tf.float32), (self.layers, self.n, 3))
        c = tf.complex(tf.cos(w[..., 1] / 2), 0.0)
        s = tf.complex(0.0, -tf.sin(w[..., 1] / 2))  # -i sin
        e0 = tf.exp(tf.complex(0.0, w[..., 0]))
        e2 = tf.exp(tf.complex(0.0, w[..., 2]))
        # Z(w2) @ PhasedX(w0, w1) = [[c, -i s e^{-i w0}], [e^{i w2} (-i s) e^{i w0}, e^{i w2} c]]
        u = tf.stack([tf.stack([c, s * tf.math.conj(e0)], -1), tf.stack([e2 * s * e0, e2 * c], -1)], -2)  # (L, n, 2, 2)
        k = u[:, 0]
        for q in range(1, self.n):  # qubit 0 is the most significant factor
            d = 2**q
            k = tf.reshape(k[:, :, None, :, None] * u[:, q, None, :, None, :], (self.layers, 2 * d, 2 * d))
        return k

    def expectations(self, features: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """⟨Z_i⟩, shape (B, n), for features `x` and flat weights `theta` (3·n·L,)."""
        state = self.initial_state(features)
        layers = self.layer_unitaries(theta)
        for l in range(self.layers):
            state = tf.gather(tf.linalg.matmul(state, layers[l], transpose_b=True), self._perm, axis=1)
        probs = tf.math.real(state * tf.math.conj(state))
        return probs @ self._zsign
