"""A dense, batched state-vector implementation of the QNN circuit in plain TensorFlow.

This is the *reference* the benchmark compares TFQ against (and a third cross-check of the
circuit's meaning in tests). It is not used for training: QMU trains with TFQ's qsim ops.

Conventions match `qmu_core.circuits`: qubit 0 is the most significant bit, one layer is
``PhasedX(phase=w0/pi, exponent=w1/pi)`` then ``Z**(w2/pi)`` on every qubit and then the CNOT ring
``0->1->...->n-1->0``; encoding is ``Ry(x_i)`` per qubit (angle) or the normalized 2^n
feature vector as the initial state (amplitude). Global phases are dropped; they do not change
any expectation value.
"""

from __future__ import annotations

import numpy as np

from qmu_core._tf import tf

__all__ = ["DenseQNN", "cnot_ring_permutation", "z_signs"]


def z_signs(n: int) -> np.ndarray:
    """(2^n, n) matrix of ⟨basis|Z_i|basis⟩ = ±1."""
    idx = np.arange(2**n)
    return np.stack([1 - 2 * ((idx >> (n - 1 - i)) & 1) for i in range(n)], axis=1).astype(np.float32)


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


class DenseQNN:
    """⟨Z_i⟩ of the basic QNN circuit, batched, differentiable by TF autodiff.

    Args:
        n_qubits: Qubits n.
        layers: Ansatz layers L.
        encoding: ``"angle"`` or ``"amplitude"``.
    """

    def __init__(self, n_qubits: int, layers: int, *, encoding: str = "angle") -> None:
        self.n = n_qubits
        self.layers = layers
        self.encoding = encoding
        self._perm = tf.constant(cnot_ring_permutation(n_qubits), dtype=tf.int32)
        self._zsign = tf.constant(z_signs(n_qubits))

    def _apply(self, state: tf.Tensor, q: int, u: tf.Tensor) -> tf.Tensor:
        n = self.n
        s = tf.reshape(state, (-1, 2**q, 2, 2 ** (n - q - 1)))
        s = tf.einsum("ij,bajc->baic", u, s)
        return tf.reshape(s, (-1, 2**n))

    def initial_state(self, x: tf.Tensor) -> tf.Tensor:
        """Encoded states (B, 2^n) complex64."""
        if self.encoding == "amplitude":
            v = tf.cast(x, tf.float32)
            norm = tf.norm(v, axis=1, keepdims=True)
            first = tf.one_hot(tf.zeros(tf.shape(v)[0], tf.int32), 2**self.n)
            v = tf.where(norm > 0, v / tf.maximum(norm, 1e-30), first)
            return tf.cast(v, tf.complex64)
        half = tf.cast(x, tf.float32) / 2.0
        state = tf.ones((tf.shape(x)[0], 1), tf.float32)
        for q in range(self.n):  # product state, qubit 0 most significant
            amp = tf.stack([tf.cos(half[:, q]), tf.sin(half[:, q])], axis=1)
            state = tf.reshape(state[:, :, None] * amp[:, None, :], (tf.shape(x)[0], -1))
        return tf.cast(state, tf.complex64)

    def expectations(self, x: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """⟨Z_i⟩, shape (B, n), for inputs `x` and flat weights `theta` (3·n·L,)."""
        state = self.initial_state(x)
        w = tf.reshape(tf.cast(theta, tf.float32), (self.layers, self.n, 3))
        for l in range(self.layers):
            for q in range(self.n):
                w0, w1, w2 = w[l, q, 0], w[l, q, 1], w[l, q, 2]
                c = tf.complex(tf.cos(w1 / 2), 0.0)
                s = tf.complex(tf.sin(w1 / 2), 0.0)
                minus_i = tf.complex(0.0, -1.0)
                phase = tf.exp(tf.complex(0.0, w0))
                phased_x = tf.stack(
                    [tf.stack([c, minus_i * s * tf.math.conj(phase)]), tf.stack([minus_i * s * phase, c])]
                )
                z = tf.stack(
                    [tf.stack([tf.complex(1.0, 0.0), tf.complex(0.0, 0.0)]),
                     tf.stack([tf.complex(0.0, 0.0), tf.exp(tf.complex(0.0, w2))])]
                )
                state = self._apply(state, q, tf.linalg.matmul(z, phased_x))
            state = tf.gather(state, self._perm, axis=1)
        probs = tf.math.real(state * tf.math.conj(state))
        return probs @ self._zsign
