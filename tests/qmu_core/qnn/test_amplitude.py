"""Tests of qmu_core.qnn.amplitude: exact real state preparation, TF angles, TFQ, gradients."""

from __future__ import annotations

import os
import subprocess
import sys

import cirq
import numpy as np
import pytest

from qmu_core.qnn import amplitude


def _simulate(features_row: np.ndarray, n: int) -> np.ndarray:
    qs = cirq.LineQubit.range(n)
    circuit, symbols = amplitude.state_prep_circuit(qs)
    values = amplitude.angles_np(features_row[None, :])[0]
    resolved = cirq.resolve_parameters(circuit, dict(zip(symbols, values, strict=False)))
    sim = cirq.Simulator(dtype=np.complex128)
    return sim.simulate(resolved, qubit_order=qs).final_state_vector


@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_prepared_state_equals_normalized_signed_vector(n: int) -> None:
    rng = np.random.default_rng(100 + n)
    for _ in range(3):
        x = rng.normal(size=2**n) * rng.uniform(0.1, 10.0)
        x[0] = -abs(x[0])  # a negative first amplitude would expose a wrong global sign
        target = x / np.linalg.norm(x)
        psi = _simulate(x, n)
        assert abs(np.vdot(psi, target)) ** 2 > 0.9999
        np.testing.assert_allclose(psi.imag, 0.0, atol=1e-12)
        np.testing.assert_allclose(psi.real, target, atol=1e-10)  # exact, global sign included


def test_zero_row_and_sparse_rows() -> None:
    assert np.all(amplitude.angles_np(np.zeros((2, 8))) == 0.0)
    np.testing.assert_allclose(_simulate(np.zeros(8), 3), np.eye(8)[0], atol=1e-12)
    x = np.array([0.0, 0.0, 0.0, -2.0, 0.0, 0.0, 1.0, 0.0])  # whole zero subtrees and pairs
    np.testing.assert_allclose(_simulate(x, 3).real, x / np.linalg.norm(x), atol=1e-12)


def test_circuit_structure_and_symbols() -> None:
    n = 8
    circuit, symbols = amplitude.state_prep_circuit(cirq.LineQubit.range(n))
    assert [s.name for s in symbols] == [f"a_{i}" for i in range(2**n - 1)]
    ops = list(circuit.all_operations())
    rys = [op for op in ops if isinstance(op.gate, cirq.Ry)]
    cnots = [op for op in ops if op.gate == cirq.CNOT]
    assert len(rys) == 2**n - 1 and len(cnots) == 2**n - 2 and len(ops) == len(rys) + len(cnots)
    for k, q in enumerate(cirq.LineQubit.range(n)):  # level k: a_{2^k-1} .. a_{2^(k+1)-2} on qubit k
        level = [cirq.ry(s) for s in symbols[2**k - 1 : 2 ** (k + 1) - 1]]
        assert [op.gate for op in rys if op.qubits == (q,)] == level


def test_angles_tf_matches_np() -> None:
    from qmu_core._tf import tf

    rng = np.random.default_rng(1)
    for n in (1, 3, 6):
        x = rng.normal(size=(5, 2**n))
        x[1, : 2 ** (n - 1)] = 0.0
        x[2] = 0.0
        got = amplitude.angles_tf(tf.constant(x, tf.float32))
        assert got.dtype == tf.float32 and got.shape == (5, 2**n - 1)
        want = amplitude.angles_np(x.astype(np.float32))
        np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


def test_tfq_state_layer_prepares_normalized_vectors() -> None:
    from qmu_core._tf import tf, tfq

    n = 3
    circuit, symbols = amplitude.state_prep_circuit(cirq.LineQubit.range(n))
    x = np.random.default_rng(2).normal(size=(4, 2**n))
    values = tf.constant(amplitude.angles_np(x), tf.float32)
    states = tfq.layers.State()(tfq.convert_to_tensor([circuit] * len(x)), symbol_names=symbols, symbol_values=values)
    states = states.to_tensor().numpy()
    targets = x / np.linalg.norm(x, axis=1, keepdims=True)
    for psi, target in zip(states, targets, strict=False):
        assert abs(np.vdot(psi, target)) ** 2 > 0.9999
        np.testing.assert_allclose(psi.real, target, atol=1e-5)


def _grad(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    from qmu_core._tf import tf

    xt = tf.Variable(x, dtype=tf.float64)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.cast(w, tf.float32) * tf.sin(amplitude.angles_tf(xt)))
    return tape.gradient(loss, xt).numpy()


def test_gradients_finite_with_zeros_and_match_finite_differences() -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(1, 15))
    for x in (
        np.zeros((1, 16)),
        np.array([[0.0, 1.0, 0.0, 0.0, 1e-8, -1e-8, 0, 0, 2.0, -3.0, 0, 0, 0, 0, 0, 0.5]]),
    ):
        assert np.all(np.isfinite(_grad(x, w)))

    x = rng.normal(size=(1, 16))
    analytic = _grad(x, w)
    eps, numeric = 1e-6, np.zeros_like(x)
    for i in range(x.shape[1]):
        d = np.zeros_like(x)
        d[0, i] = eps
        f = lambda v: np.sum(w * np.sin(amplitude.angles_np(v)))  # noqa: E731
        numeric[0, i] = (f(x + d) - f(x - d)) / (2 * eps)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-4)


def test_import_does_not_load_tensorflow() -> None:
    code = "import sys, qmu_core.qnn.amplitude; assert 'tensorflow' not in sys.modules"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
