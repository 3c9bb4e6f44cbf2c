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


@pytest.mark.parametrize("encoding,n,layers", [("angle", 4, 3), ("amplitude", 3, 2), ("angle", 2, 2)])
def test_dense_reference_equals_cirq(encoding: str, n: int, layers: int) -> None:
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
    backend = DenseBackend(ModelConfig(n_qubits=n, layers=layers, encoding=encoding))
    got = backend.expectations(tf.constant(x, tf.float32), tf.constant(theta, tf.float32))
    np.testing.assert_allclose(got.numpy(), np.array(expected), atol=1e-5)


def test_dense_reference_refuses_reuploading() -> None:
    with pytest.raises(ConfigError, match="re-uploading"):
        DenseBackend(ModelConfig(n_qubits=2, layers=1, reupload=True))
