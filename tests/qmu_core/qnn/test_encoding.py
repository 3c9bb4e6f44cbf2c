"""The encoding and front-end objects: each rule once, the same numbers on every path."""

from __future__ import annotations

import cirq
import numpy as np
import pytest

from qmu_core._tf import tf
from qmu_core.config import ModelConfig
from qmu_core.errors import ConfigError
from qmu_core.qnn import circuits
from qmu_core.qnn.encoding import AMPLITUDE, ANGLE, ENCODINGS, encoding_named, model_encoding
from qmu_core.qnn.frontend import BASIC, CNN, FRONT_ENDS, model_front_end

CASES = [
    {"encoding": "angle"},
    {"encoding": "angle", "reupload": True},
    {"encoding": "amplitude"},
]


@pytest.mark.parametrize("kw", CASES, ids=["angle", "reupload", "amplitude"])
def test_numpy_and_tensorflow_symbol_values_agree(kw: dict) -> None:
    """The hardware path's values (NumPy) are the training path's (TensorFlow)."""
    model = ModelConfig(n_qubits=3, layers=2, **kw)
    enc = model_encoding(model)
    x = np.random.default_rng(0).uniform(0, np.pi, size=(5, enc.width(model.n_qubits)))
    got = enc.values(x, model)
    want = enc.values_tf(tf.constant(x, tf.float32), model).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    names = enc.input_symbols(model.n_qubits, model.layers, reupload=model.reupload)
    assert got.shape == (5, len(names))
    with pytest.raises(ConfigError, match="features per record"):
        enc.values(x[:, :2], model)


@pytest.mark.parametrize("name", ["angle", "amplitude"])
def test_states_are_what_the_circuit_prepares(name: str) -> None:
    """`states_tf` (dense reference, unitary route, QFI) equals simulating `prepare`'s gates."""
    enc, n = encoding_named(name), 3
    qs = circuits.qubits(n)
    symbols = enc.input_symbols(n)
    prep = enc.prepare(qs, symbols)
    x = np.random.default_rng(1).uniform(0.1, np.pi, size=(4, enc.width(n)))
    states = enc.states_tf(tf.constant(x, tf.float32)).numpy()
    values = enc.values(x, ModelConfig(n_qubits=n, layers=1, encoding=name))
    for row, state in zip(values, states, strict=True):
        resolver = cirq.ParamResolver({str(s): float(v) for s, v in zip(symbols, row, strict=True)})
        want = cirq.final_state_vector(cirq.resolve_parameters(prep, resolver), qubit_order=qs)
        np.testing.assert_allclose(state, want.real, atol=1e-5)
        assert np.allclose(want.imag, 0, atol=1e-6)


def test_registries_and_rules() -> None:
    assert ENCODINGS == {"angle": ANGLE, "amplitude": AMPLITUDE}
    assert FRONT_ENDS == {"basic_qnn": BASIC, "hqnn": CNN}
    assert [ANGLE.width(4), AMPLITUDE.width(4)] == [4, 16]
    assert all(ModelConfig(encoding=n).feature_spec.n_components == e.width(8) for n, e in ENCODINGS.items())
    with pytest.raises(ConfigError, match="not supported"):
        encoding_named("basis")
    with pytest.raises(ConfigError, match="re-uploading"):
        AMPLITUDE.input_symbols(3, 2, reupload=True)
    z, lo, hi = np.array([[0.0, 2.0, 5.0]]), np.zeros(3), np.full(3, 4.0)
    np.testing.assert_allclose(ANGLE.scale(z, lo, hi), [[0.0, np.pi / 2, np.pi]])
    np.testing.assert_array_equal(AMPLITUDE.scale(z, lo, hi), z)
    hqnn = ModelConfig(kind="hqnn", encoding="amplitude")
    assert model_front_end(hqnn) is CNN and model_front_end(ModelConfig()) is BASIC
    assert CNN.recipe(AMPLITUDE)[-1] == AMPLITUDE.cnn_recipe and BASIC.recipe(ANGLE)[-1] == ANGLE.pca_recipe
    assert BASIC.reads_features and not CNN.reads_features and (BASIC.column, CNN.column) == ("x", "pixels")
