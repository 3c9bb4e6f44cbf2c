"""The dense TF reference implements the same circuit as circuits.py (checked with Cirq)."""

from __future__ import annotations

import numpy as np
import pytest

from qmu_core._tf import tf
from qmu_core.config import ModelConfig
from qmu_core.errors import ConfigError
from qmu_core.qnn import amplitude, circuits
from qmu_core.qnn.backends.dense import DenseBackend
from tests.support import resolve, z_expectations


@pytest.mark.parametrize("per_qubit", [False, True], ids=["kron", "per-qubit"])
@pytest.mark.parametrize("encoding,n,layers", [("angle", 4, 3), ("amplitude", 3, 2), ("angle", 2, 2)])
def test_dense_reference_equals_cirq(encoding: str, n: int, layers: int, per_qubit: bool) -> None:
    circ, inputs = circuits.build_circuit(n, layers, encoding=encoding)
    ws = circuits.weight_symbols(n, layers)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=len(ws))
    if encoding == "angle":
        x = rng.uniform(0, np.pi, size=(3, n))
        symbol_rows = x
    else:
        x = rng.normal(size=(3, 2**n))
        symbol_rows = amplitude.angles_np(x)
    expected = [
        z_expectations(resolve(circ, dict(zip(map(str, [*inputs, *ws]), [*row, *theta], strict=True))), n)
        for row in symbol_rows
    ]
    backend = DenseBackend(ModelConfig(n_qubits=n, layers=layers, encoding=encoding), per_qubit=per_qubit)
    got = backend.expectations(tf.constant(x, tf.float32), tf.constant(theta, tf.float32))
    np.testing.assert_allclose(got.numpy(), np.array(expected), atol=1e-5)


def test_dense_reference_reuploads_as_cirq_does() -> None:
    n, layers = 3, 3
    circ, inputs = circuits.build_circuit(n, layers, reupload=True)
    ws = circuits.weight_symbols(n, layers)
    rng = np.random.default_rng(2)
    theta, x = rng.normal(size=len(ws)), rng.uniform(0, np.pi, size=(3, n))
    expected = [
        z_expectations(
            resolve(circ, dict(zip(map(str, [*inputs, *ws]), [*np.tile(row, layers), *theta], strict=True))), n
        )
        for row in x
    ]
    backend = DenseBackend(ModelConfig(n_qubits=n, layers=layers, reupload=True))
    assert backend.per_qubit
    got = backend.expectations(tf.constant(x, tf.float32), tf.constant(theta, tf.float32))
    np.testing.assert_allclose(got.numpy(), np.array(expected), atol=1e-5)
    with pytest.raises(ConfigError, match="per-qubit"):
        DenseBackend(ModelConfig(n_qubits=n, layers=layers, reupload=True), per_qubit=False)


def test_wide_circuits_take_the_per_qubit_route_and_agree_with_tfq() -> None:
    """12 qubits: the per-qubit dense route (a 2^12 x 2^12 layer matrix is not built) equals TFQ's qsim."""
    from qmu_core.qnn.backends.plain import PlainTFQBackend

    cfg = ModelConfig(n_qubits=12, layers=2)
    dense = DenseBackend(cfg)
    assert dense.per_qubit
    rng = np.random.default_rng(1)
    x = tf.constant(rng.uniform(0, np.pi, size=(4, 12)), tf.float32)
    theta = tf.constant(rng.normal(size=3 * 12 * 2), tf.float32)
    got = dense.expectations(x, theta).numpy()
    want = PlainTFQBackend(cfg).expectations(x, theta).numpy()
    np.testing.assert_allclose(got, want, atol=100 * np.finfo(np.float32).eps)
