"""Amplitude encoding of real vectors as a symbolic state-preparation circuit.

TFQ has no amplitude embedding, so a real vector ``x`` of length ``2^n`` is loaded by a
Möttönen-style binary tree of uniformly controlled Ry rotations:

* level ``k`` (``0..n-1``) rotates qubit ``k`` conditioned on the state of qubits
  ``0..k-1`` (qubit 0 is the most significant bit of the state index, Cirq's order);
* for the prefix ``j`` of the index, the rotation angle is
  ``alpha_j = 2 * atan2(|x_right|, |x_left|)`` where ``x_left`` / ``x_right`` are the
  amplitudes under that prefix with qubit ``k`` equal to 0 / 1. On the last level the halves
  are single amplitudes and the *signed* values are used, which puts every sign in place, so
  the prepared state equals ``x / ||x||`` exactly (global sign included);
* each uniformly controlled rotation with ``k`` controls is decomposed into ``2^k`` plain
  ``Ry(theta_i)`` and ``2^k`` CNOTs whose controls follow a Gray code. Control state ``j``
  then sees ``Ry(sum_i (-1)^(j . g_i) theta_i)``, so ``theta = M^T alpha / 2^k`` with
  ``M[j, i] = (-1)^popcount(j & g_i)`` and ``g_i = i ^ (i >> 1)``.

The circuit uses only ``cirq.ry(a_k)`` and ``cirq.CNOT``: ``2^n - 1`` rotations and
``2^n - 2`` CNOTs. Symbols ``a_0 .. a_{2^n-2}`` are the ``theta`` of level 0, then level 1,
and so on; `angles_np` / `angles_tf` return them in that order, ready as symbol values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from qmu_core.errors import ConfigError

if TYPE_CHECKING:
    import cirq
    import sympy

__all__ = ["angles_np", "angles_tf", "state_prep_circuit"]


def _gray(i: int) -> int:
    return i ^ (i >> 1)


def _transform(k: int) -> np.ndarray:
    """``M / 2^k`` with ``M[j, i] = (-1)^popcount(j & g_i)``: maps alpha (per control state) to theta."""
    size = 1 << k
    m = np.array([[(-1) ** bin(j & _gray(i)).count("1") for i in range(size)] for j in range(size)])
    return m.astype(np.float64) / size


def _n_from_width(width: int) -> int:
    n = width.bit_length() - 1
    if width < 2 or (1 << n) != width:
        raise ConfigError(
            f"Amplitude encoding got {width} features per record, but it needs a power of two "
            "(at least 2); zero-pad the features to the next power of two first."
        )
    return n


def state_prep_circuit(qs: Sequence[cirq.Qid]) -> tuple[cirq.Circuit, list[sympy.Symbol]]:
    """Symbolic circuit preparing a real amplitude-encoded state from ``|0...0>``.

    Args:
        qs: The n qubits, most significant first (normally ``cirq.LineQubit.range(n)``).

    Returns:
        ``(circuit, symbols)`` with symbols ``a_0 .. a_{2^n-2}`` in the order of `angles_np`.
    """
    n = len(qs)
    if n < 1:
        raise ConfigError("state_prep_circuit needs at least one qubit; pass qubits(n) with n >= 1.")
    import cirq  # here, not at import: the study side reads `angles_np` without any circuit
    import sympy

    symbols = [sympy.Symbol(f"a_{i}") for i in range((1 << n) - 1)]
    ops: list[cirq.Operation] = []
    for k in range(n):
        size = 1 << k
        for i in range(size):
            ops.append(cirq.ry(symbols[size - 1 + i]).on(qs[k]))
            if k:
                bit = (_gray(i) ^ _gray((i + 1) % size)).bit_length() - 1  # bit b <-> qubit k-1-b
                ops.append(cirq.CNOT(qs[k - 1 - bit], qs[k]))
    return cirq.Circuit(ops), symbols


def angles_np(features: np.ndarray) -> np.ndarray:
    """Symbol values of `state_prep_circuit` for each record (NumPy, float64).

    Args:
        features: Real array ``(B, 2^n)``, any scale; an all-zero row gives ``|0...0>``.

    Returns:
        ``(B, 2^n - 1)`` float64 angles for symbols ``a_0 ..``.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ConfigError(f"angles_np expects a (B, 2^n) array, got shape {x.shape}; add a batch axis.")
    n = _n_from_width(x.shape[1])
    out = []
    for k in range(n):
        halves = x.reshape(x.shape[0], 1 << k, 2, -1)
        if k == n - 1:  # signed leaves
            left, right = halves[..., 0, 0], halves[..., 1, 0]
        else:
            left, right = np.linalg.norm(halves[..., 0, :], axis=-1), np.linalg.norm(halves[..., 1, :], axis=-1)
        out.append(2.0 * np.arctan2(right, left) @ _transform(k))
    return np.concatenate(out, axis=1)


def _safe_norm(tf: Any, v: Any) -> Any:
    s = tf.reduce_sum(tf.square(v), axis=-1)
    pos = s > 0
    return tf.where(pos, tf.sqrt(tf.where(pos, s, tf.ones_like(s))), tf.zeros_like(s))


def _safe_atan2(tf: Any, y: Any, x: Any) -> Any:
    ok = tf.logical_or(tf.not_equal(x, 0), tf.not_equal(y, 0))
    angle = tf.atan2(tf.where(ok, y, tf.zeros_like(y)), tf.where(ok, x, tf.ones_like(x)))
    return tf.where(ok, angle, tf.zeros_like(angle))


def angles_tf(features: Any) -> Any:
    """`angles_np` in TensorFlow, differentiable with respect to `features`.

    Computed in float64; norms and atan2 are guarded with ``tf.where`` so values and gradients
    stay finite at exact zeros (where the angle is defined as 0).

    Args:
        features: Real tensor ``(B, 2^n)`` with a static last dimension.

    Returns:
        ``(B, 2^n - 1)`` float32 tensor of angles.
    """
    from qmu_core._tf import tf

    x = tf.cast(tf.convert_to_tensor(features), tf.float64)
    if x.shape.rank != 2 or x.shape[-1] is None:
        raise ConfigError(f"angles_tf expects a (B, 2^n) tensor with known width, got {x.shape}.")
    n = _n_from_width(int(x.shape[-1]))
    out = []
    for k in range(n):
        halves = tf.reshape(x, [-1, 1 << k, 2, 1 << (n - k - 1)])
        if k == n - 1:
            left, right = halves[:, :, 0, 0], halves[:, :, 1, 0]
        else:
            left, right = _safe_norm(tf, halves[:, :, 0, :]), _safe_norm(tf, halves[:, :, 1, :])
        out.append(tf.matmul(2.0 * _safe_atan2(tf, right, left), tf.constant(_transform(k))))
    return tf.cast(tf.concat(out, axis=1), tf.float32)
