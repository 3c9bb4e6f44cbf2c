"""A dense, batched state-vector implementation of the QNN circuit in plain TensorFlow.

This is the *reference* the benchmark compares TFQ against (and a third cross-check of the
circuit's meaning in tests), as the `dense` expectation backend. QMU trains with TFQ's qsim
ops; `bench/train_speed.py` builds a `QNN` with this backend to time the dense limit.

Conventions match `qmu_core.circuits`: qubit 0 is the most significant bit, one layer is
``PhasedX(phase=w0/pi, exponent=w1/pi)`` then ``Z**(w2/pi)`` on every qubit and then the CNOT ring
``0->1->...->n-1->0``; encoding is ``Ry(x_i)`` per qubit (angle) or the normalized 2^n
feature vector as the initial state (amplitude). Global phases are dropped; they do not change
any expectation value.

Two ways to apply a layer's single-qubit rotations, the same numbers to float rounding:
up to `KRON_MAX_QUBITS` qubits as one ``2^n x 2^n`` matrix (one matmul per layer, fastest when
the matrix is small); above it one ``2 x 2`` contraction per qubit (``O(B n 2^n)`` per layer:
the 16-qubit matrix alone would take 32 GiB). The benchmark's dense limit is therefore the faster
of the two at every width.
"""

from __future__ import annotations

import numpy as np

from qmu_core._tf import tf
from qmu_core.config import ModelConfig
from qmu_core.errors import ConfigError
from qmu_core.qnn import circuits
from qmu_core.qnn.backends.base import ExpectationBackend

__all__ = ["KRON_MAX_QUBITS", "DenseBackend", "cnot_ring_permutation"]

KRON_MAX_QUBITS = 7
"""Largest ``n_qubits`` whose layers are applied as one ``2^n x 2^n`` matrix (module doc).

Measured (forward and gradient, 32 records, 5 layers, 2 cores): the matrix is as fast or faster
up to 7 qubits (7.1 vs 8.2 ms a step), the per-qubit route from 8 (11.4 vs 20.6 ms; at 12
qubits 98 ms vs 4.4 s)."""


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
        model: The model section: angle (with or without re-uploading) or amplitude encoding.
        per_qubit: Force the layer route (module doc); None picks it by width (re-uploading
            always takes the per-qubit route).

    Raises:
        ConfigError: For re-uploading with ``per_qubit=False``.
    """

    name = "dense"

    def __init__(self, model: ModelConfig, *, per_qubit: bool | None = None) -> None:
        super().__init__(model)
        self.n = model.n_qubits
        self.layers = model.layers
        self._perm = tf.constant(cnot_ring_permutation(self.n), dtype=tf.int32)
        self._zsign = tf.constant(circuits.z_signs(self.n))
        self.reupload = model.reupload
        if self.reupload and per_qubit is False:
            raise ConfigError("The dense backend re-uploads data only on its per-qubit route; leave per_qubit unset.")
        self.per_qubit = (self.n > KRON_MAX_QUBITS or self.reupload) if per_qubit is None else per_qubit

    def initial_state(self, x: tf.Tensor) -> tf.Tensor:
        """Encoded states (B, 2^n) complex64."""
        return tf.cast(self.encoding.states_tf(x), tf.complex64)

    def qubit_unitaries(self, theta: tf.Tensor) -> tf.Tensor:
        """Every layer's single-qubit gate on every qubit, ``Z(w2) PhasedX(w0, w1)``: shape (L, n, 2, 2)."""
        w = tf.reshape(tf.cast(theta, tf.float32), (self.layers, self.n, 3))
        c = tf.complex(tf.cos(w[..., 1] / 2), 0.0)
        s = tf.complex(0.0, -tf.sin(w[..., 1] / 2))  # -i sin
        e0 = tf.exp(tf.complex(0.0, w[..., 0]))
        e2 = tf.exp(tf.complex(0.0, w[..., 2]))
        # Z(w2) @ PhasedX(w0, w1) = [[c, -i s e^{-i w0}], [e^{i w2} (-i s) e^{i w0}, e^{i w2} c]]
        return tf.stack([tf.stack([c, s * tf.math.conj(e0)], -1), tf.stack([e2 * s * e0, e2 * c], -1)], -2)

    def _on_qubit(self, state: tf.Tensor, gate: tf.Tensor, q: int, *, per_record: bool = False) -> tf.Tensor:
        """A 2x2 `gate` (one per record if `per_record`: (B, 2, 2)) on qubit `q` = bit n-1-q of the index."""
        split = tf.reshape(state, (-1, 2**q, 2, 2 ** (self.n - 1 - q)))
        return tf.reshape(tf.einsum("bij,bajc->baic" if per_record else "ij,bajc->baic", gate, split), (-1, 2**self.n))

    def _ry(self, features: tf.Tensor) -> tf.Tensor:
        """``Ry(x_q)`` of every record and qubit, shape (B, n, 2, 2) complex64 (re-uploading)."""
        half = tf.cast(features, tf.float32) / 2
        c, s = tf.cos(half), tf.sin(half)
        return tf.cast(tf.stack([tf.stack([c, -s], -1), tf.stack([s, c], -1)], -2), tf.complex64)

    def layer_unitaries(self, theta: tf.Tensor) -> tf.Tensor:
        """Single-qubit part of every layer as one 2^n x 2^n matrix, shape (L, 2^n, 2^n)."""
        u = self.qubit_unitaries(theta)
        k = u[:, 0]
        for q in range(1, self.n):  # qubit 0 is the most significant factor
            d = 2**q
            k = tf.reshape(k[:, :, None, :, None] * u[:, q, None, :, None, :], (self.layers, 2 * d, 2 * d))
        return k

    def expectations(self, features: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """⟨Z_i⟩, shape (B, n), for features `x` and flat weights `theta` (3·n·L,)."""
        state = self.initial_state(features)
        if self.per_qubit:
            u = self.qubit_unitaries(theta)
            ry = self._ry(features) if self.reupload else None
            for l in range(self.layers):
                if ry is not None and l > 0:  # layer 0's Ry block is the initial state
                    for q in range(self.n):
                        state = self._on_qubit(state, ry[:, q], q, per_record=True)
                for q in range(self.n):
                    state = self._on_qubit(state, u[l, q], q)
                state = tf.gather(state, self._perm, axis=1)
        else:
            layers = self.layer_unitaries(theta)
            for l in range(self.layers):
                state = tf.gather(tf.linalg.matmul(state, layers[l], transpose_b=True), self._perm, axis=1)
        probs = tf.math.real(state * tf.math.conj(state))
        return probs @ self._zsign
