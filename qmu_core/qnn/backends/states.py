"""Encoded states as dense amplitude vectors (TensorFlow): the one home of these rules.

Qubit 0 is the most significant bit of the basis index (Cirq's order).
"""

from __future__ import annotations

from qmu_core._tf import tf

__all__ = ["amplitude_states", "product_states"]


def product_states(angles: tf.Tensor) -> tf.Tensor:
    """States ``prod_q Ry(x_q)|0>`` of angle encoding, shape ``(B, 2^n)`` (real, float32).

    Args:
        angles: ``(B, n)`` encoding angles.
    """
    angles = tf.convert_to_tensor(angles, tf.float32)
    c, s = tf.cos(angles / 2), tf.sin(angles / 2)
    batch = tf.shape(angles)[0]
    psi = tf.ones([batch, 1], dtype=angles.dtype)
    for i in range(int(angles.shape[-1])):
        psi = tf.reshape(psi[:, :, None] * tf.stack([c[:, i], s[:, i]], 1)[:, None, :], [batch, -1])
    return psi


def amplitude_states(features: tf.Tensor) -> tf.Tensor:
    """The state amplitude encoding prepares: ``x / ||x||``, and ``|0...0>`` for ``x = 0``.

    Args:
        features: ``(B, 2^n)`` real features.

    Returns:
        ``(B, 2^n)`` float32 unit vectors, exactly what `qmu_core.qnn.amplitude.state_prep_circuit`
        prepares from `qmu_core.qnn.amplitude.angles_tf` (normalized in float64).
    """
    x = tf.cast(features, tf.float64)
    norm = tf.norm(x, axis=1, keepdims=True)
    e0 = tf.one_hot(tf.zeros([tf.shape(x)[0]], tf.int32), tf.shape(x)[1], dtype=tf.float64)
    safe = tf.where(norm > 0, norm, tf.ones_like(norm))
    return tf.cast(tf.where(norm > 0, x / safe, e0), tf.float32)
