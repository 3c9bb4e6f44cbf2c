"""The QFI diagonal of plug-in circuits (`qmu_core.unlearning.circuit_qfi`) and SSD's ``qfi`` on a plug-in model."""

from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy

from qmu_core import plugins
from qmu_core.config import ModelConfig, TrainConfig, UnlearnConfig
from qmu_core.plugins import MODELS
from qmu_core.qnn.models import QNN
from qmu_core.unlearning.base import Evals, Request
from qmu_core.unlearning.circuit_qfi import circuit_qfi_diagonal
from qmu_core.unlearning.qfi import qfi_diagonal
from qmu_core.unlearning.ssd import SelectiveSynapticDampening

PLUGIN = "reupload_ring"
needs_example = pytest.mark.skipif(
    PLUGIN not in plugins.installed(MODELS),
    reason="pip install -e examples/reupload_plugin --no-deps (the example model plug-in) first",
)

q0, q1, q2 = cirq.LineQubit.range(3)
u, v, w, x, y = sympy.symbols("u v w x y")


def _reference(
    circuit: cirq.Circuit, inputs: list, weights: list, features: np.ndarray, theta: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Per-record QFI diagonal: central differences of `cirq.final_state_vector` (complex128) in theta."""
    qs = sorted(circuit.all_qubits())

    def state(row: np.ndarray, th: np.ndarray) -> np.ndarray:
        values = {str(s): float(a) for s, a in zip([*inputs, *weights], [*row, *th], strict=True)}
        resolved = cirq.resolve_parameters(circuit, cirq.ParamResolver(values))
        return cirq.final_state_vector(resolved, qubit_order=qs, dtype=np.complex128)

    out = np.zeros((len(features), len(theta)))
    for r, row in enumerate(np.asarray(features, np.float64)):
        psi = state(row, theta)
        for k in range(len(theta)):
            step = np.zeros_like(theta)
            step[k] = h
            d = (state(row, theta + step) - state(row, theta - step)) / (2 * h)
            out[r, k] = 4 * (np.vdot(d, d).real - abs(np.vdot(psi, d)) ** 2)
    return out


def test_known_values() -> None:
    """Ry(u)|0>: F = 1; Ry(u) Ry(u) and Ry(2u): F = 4; Ry(x) Rz(v): F_v = sin^2 x per record."""
    for circuit, expected in [
        (cirq.Circuit(cirq.ry(u).on(q0)), 1.0),
        (cirq.Circuit(cirq.ry(u).on(q0), cirq.ry(u).on(q0)), 4.0),
        (cirq.Circuit(cirq.ry(2 * u).on(q0)), 4.0),
        (cirq.Circuit(cirq.X(q0) ** (u / np.pi)), 1.0),  # a PowGate with its global phase: cancels
    ]:
        got = circuit_qfi_diagonal(circuit, [], [u], np.zeros((1, 0)), np.array([0.7]))
        assert got.shape == (1, 1)
        assert got[0, 0] == pytest.approx(expected, abs=1e-9), circuit

    xs = np.array([[0.0], [0.4], [np.pi / 2], [2.5]])
    circuit = cirq.Circuit(cirq.ry(x).on(q0), cirq.rz(v).on(q0))
    got = circuit_qfi_diagonal(circuit, [x], [v], xs, np.array([1.3]))
    np.testing.assert_allclose(got[:, 0], np.sin(xs[:, 0]) ** 2, atol=1e-9)


def test_equals_state_vector_finite_differences_on_a_mixed_circuit() -> None:
    """Expressions, shared symbols, inputs inside weight gates and two-qubit parameterized gates."""
    circuit = cirq.Circuit(
        cirq.H.on_each(q0, q1, q2),
        cirq.ry(x).on(q0),
        cirq.rx(u + 0.5 * y).on(q1),
        cirq.ZZ(q0, q1) ** (v / np.pi),
        cirq.CZ(q1, q2) ** w,
        cirq.ry(x * u).on(q2),
        cirq.PhasedXPowGate(phase_exponent=v, exponent=w).on(q0),
        cirq.CNOT(q2, q0),
        cirq.rz(2 * u).on(q1),
        cirq.XX(q1, q2) ** (u - v),
    )
    rng = np.random.default_rng(0)
    features = rng.uniform(0, np.pi, (4, 2))
    theta = rng.uniform(-np.pi, np.pi, 3)
    got = circuit_qfi_diagonal(circuit, [x, y], [u, v, w], features, theta, batch_size=3)
    expected = _reference(circuit, [x, y], [u, v, w], features, theta)
    assert np.abs(got - expected).max() < 1e-6
    assert got.min() > 1e-3


@needs_example
def test_a_plugin_models_qfi_equals_state_vector_finite_differences() -> None:
    qnn = QNN(ModelConfig(kind=PLUGIN, n_qubits=3, layers=2), n_classes=3, image_side=8, seed=5)
    x_in = np.random.default_rng(1).uniform(0, np.pi, (5, 3)).astype(np.float32)
    evals = Evals()
    got = qfi_diagonal(qnn, x_in, evals)
    theta = qnn.variables["theta"].numpy().astype(np.float64)
    expected = _reference(qnn.circuit, qnn.input_symbols, qnn.weight_symbols, x_in, theta).mean(axis=0)
    assert got.shape == (12,)
    assert np.abs(got - expected).max() < 1e-6
    assert got.max() > 0.1
    assert evals.count == (1 + 12) * len(x_in)  # the state and 12 derivative states per record
    assert qfi_diagonal(qnn, x_in[:0], Evals()).tolist() == [0.0] * 12


@needs_example
def test_ssd_with_qfi_dampens_a_plugin_models_circuit_weights() -> None:
    qnn = QNN(ModelConfig(kind=PLUGIN, n_qubits=3, layers=2), n_classes=3, image_side=8, seed=5)
    rng = np.random.default_rng(2)
    x_forget = rng.uniform(0.0, 0.3, (4, 3)).astype(np.float32)  # near |0>: unlike the retained records
    x_retain = rng.uniform(1.2, np.pi, (12, 3)).astype(np.float32)
    request = Request(
        "class", x_forget, np.zeros(4, np.int32), x_retain, rng.integers(1, 3, 12).astype(np.int32), stop_acc=0.5
    )
    before = qnn.variables["theta"].numpy().copy()
    method = SelectiveSynapticDampening(UnlearnConfig(ssd_alpha=1.5, ssd_importance="qfi"), TrainConfig())
    result = method.run(qnn, request, seed=0)
    after = qnn.variables["theta"].numpy()
    changed = after != before
    assert changed.any() and not changed.all(), (before, after)
    assert np.all(np.abs(after[changed]) < np.abs(before[changed]))  # dampened towards 0
    n_u, n_d = 4, 16
    # Fisher gradients (2 each) on D and U, the QFI's sweeps (1 + 12 per record of U and R), the accuracy on U.
    assert result.circuit_evals == 2 * (n_d + n_u) + 13 * n_d + n_u
