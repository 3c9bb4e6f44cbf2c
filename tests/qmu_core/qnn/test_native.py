"""QMU's native op (`qmu_core.qnn.native`) against Cirq: values, exact gradients, many models at once."""

from __future__ import annotations

import cirq
import numpy as np
import pytest

from qmu_core._tf import tf
from qmu_core.qnn import circuits, native
from qmu_core.qnn.native import ansatz_gate_table

FLOAT32_EPS = float(np.finfo(np.float32).eps)

op = native.load()
pytestmark = pytest.mark.skipif(op is None, reason=f"native op unavailable: {native.unavailable_reason()}")


def _unitary(n: int, layers: int, theta: np.ndarray) -> np.ndarray:
    qs = circuits.qubits(n)
    resolver = dict(zip(map(str, circuits.weight_symbols(n, layers)), theta, strict=True))
    return cirq.unitary(cirq.resolve_parameters(circuits.ansatz(qs, layers), resolver)).astype(np.complex128)


def _exact(n: int, layers: int, theta: np.ndarray, psi: np.ndarray, g: np.ndarray):
    """<Z_i>, d/dtheta and d/dpsi of sum g_i <Z_i>, in float64 (central differences, h = 1e-6).

    Not the two-term parameter shift: a PhasedXPowGate's phase exponent enters twice.
    """
    z = circuits.z_signs(n).astype(np.float64)

    def values(t: np.ndarray) -> np.ndarray:
        phi = psi @ _unitary(n, layers, t).T
        return (np.abs(phi) ** 2) @ z

    ev = values(theta)
    d_theta = np.zeros((len(psi), len(theta)))
    for k in range(len(theta)):
        shift = np.zeros_like(theta)
        shift[k] = 1e-6
        d_theta[:, k] = ((values(theta + shift) - values(theta - shift)) / 2e-6 * g).sum(axis=1)
    u = _unitary(n, layers, theta)
    observable = [u.conj().T @ np.diag(z @ gb) @ u for gb in g]
    d_psi = np.stack([2 * (o @ p).real for o, p in zip(observable, psi, strict=True)])
    return ev, d_theta, d_psi


@pytest.mark.parametrize("n,layers", [(2, 2), (3, 1), (4, 1)])
def test_values_and_gradients_equal_cirq(n: int, layers: int) -> None:
    rng = np.random.default_rng(n * 10 + layers)
    m_count, b_count, p_count = 2, 4, 3 * n * layers
    psi = rng.normal(size=(m_count, b_count, 2**n))
    psi /= np.linalg.norm(psi, axis=-1, keepdims=True)
    theta = rng.uniform(-np.pi, np.pi, size=(m_count, p_count))
    g = rng.normal(size=(m_count, b_count, n))
    ev, d_theta, d_states = op(
        tf.constant(psi, tf.float32),
        tf.constant(theta, tf.float32),
        tf.constant(ansatz_gate_table(n, layers)),
        tf.constant(g, tf.float32),
    )
    for m in range(m_count):  # every model with its own weights, as if alone
        want_ev, want_dt, want_ds = _exact(n, layers, theta[m], psi[m], g[m])
        for got, want in [(ev[m], want_ev), (d_theta[m], want_dt), (d_states[m], want_ds)]:
            scale = max(1.0, float(np.abs(want).max()))
            np.testing.assert_allclose(got.numpy(), want, atol=256 * FLOAT32_EPS * scale)


def test_gate_table_is_the_ansatz() -> None:
    """Rebuilding a Cirq circuit from the table gives the ansatz's unitary."""
    n, layers = 3, 2
    theta = np.random.default_rng(1).uniform(-np.pi, np.pi, 3 * n * layers)
    qs = cirq.LineQubit.range(n)
    ops = []
    for kind, a, b, p in ansatz_gate_table(n, layers):
        if kind == 0:
            ops.append(cirq.PhasedXPowGate(phase_exponent=theta[p] / np.pi, exponent=theta[p + 1] / np.pi).on(qs[a]))
        elif kind == 1:
            ops.append(cirq.ZPowGate(exponent=theta[p] / np.pi).on(qs[a]))
        else:
            ops.append(cirq.CNOT(qs[a], qs[b]))
    np.testing.assert_allclose(cirq.unitary(cirq.Circuit(ops)), _unitary(n, layers, theta), atol=1e-12)


@pytest.mark.parametrize(
    "change,says",
    [
        ({"states": np.zeros((1, 2, 6), np.float32)}, "2\\^n"),
        ({"theta": np.zeros((2, 12), np.float32)}, "theta must be"),
        ({"upstream": np.zeros((1, 2, 3), np.float32)}, "upstream must be"),
        ({"gates": np.array([[7, 0, 0, 0]], np.int32)}, "unknown kind"),
        ({"gates": np.array([[2, 0, 0, -1]], np.int32)}, "qubit out of range"),
        ({"gates": np.array([[0, 1, 0, 11]], np.int32)}, "parameter 11 out of range"),
    ],
)
def test_bad_inputs_are_refused_with_the_reason(change: dict, says: str) -> None:
    args = {
        "states": np.ones((1, 2, 16), np.float32) / 4,
        "theta": np.zeros((1, 12), np.float32),
        "gates": ansatz_gate_table(4, 1),
        "upstream": np.zeros((1, 2, 4), np.float32),
    } | change
    with pytest.raises((tf.errors.InvalidArgumentError, ValueError), match=says):
        op(**{k: tf.constant(v) for k, v in args.items()})


def test_the_library_name_follows_source_and_tensorflow(tmp_path, monkeypatch) -> None:
    a = native.library_path("2.18.1", ["-DX"])
    assert a == native.library_path("2.18.1", ["-DX"])
    assert a != native.library_path("2.18.2", ["-DX"]) != native.library_path("2.18.1", ["-DY"])
    source = tmp_path / "op.cc"
    source.write_text(native.SOURCE.read_text() + "\n// changed\n")
    monkeypatch.setattr(native, "SOURCE", source)
    assert native.library_path("2.18.1", ["-DX"]) != a
