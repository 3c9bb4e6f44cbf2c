"""Cirq circuits of the QNNs: the model circuit (encoding, then ansatz), the ansatz and the read-out.

Pure Cirq + SymPy (no TensorFlow), so exported circuits can be rebuilt and checked by anyone
who uses Cirq. Symbol names are fixed and documented:

* ``x_{i}``: angle-encoding input on qubit ``i`` (``x_{l}_{i}`` with data re-uploading);
* ``a_{k}``: amplitude-encoding (state preparation) angles, see `qmu_core.qnn.amplitude`;
* ``w_{l}_{i}_{j}``: trainable rotation ``j`` (0..2) on qubit ``i`` in layer ``l``.

One ansatz layer is a U3-equivalent rotation on every qubit,
``Z**(w2/pi) . PhasedX(phase=w0/pi, exponent=w1/pi)``, followed by the CNOT ring
``0->1->...->n-1->0``. ``PhasedX(p, e)`` followed by ``Z**c`` reaches every single-qubit
unitary up to a global phase (like ``U3(theta, phi, lambda)``) with two gates instead of
three, and both gates are natively supported by TFQ's serializer.

The encodings' symbols and gates are `qmu_core.qnn.encoding`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

import cirq
import numpy as np
import sympy

from qmu_core.qnn.encoding import ANGLE, encoding_named

__all__ = [
    "ansatz",
    "build_circuit",
    "qubits",
    "readout_ops",
    "weight_symbols",
    "z_signs",
]


def qubits(n: int) -> list[cirq.LineQubit]:
    """The model's qubits: ``cirq.LineQubit(0..n-1)``."""
    return cirq.LineQubit.range(n)


def weight_symbols(n_qubits: int, layers: int) -> list[sympy.Symbol]:
    """Trainable symbols in (layer, qubit, rotation) order; 3 * n_qubits * layers of them."""
    return [sympy.Symbol(f"w_{l}_{i}_{j}") for l in range(layers) for i in range(n_qubits) for j in range(3)]


def _rotation(q: cirq.Qid, w: Sequence[sympy.Basic]) -> list[cirq.Operation]:
    return [
        cirq.PhasedXPowGate(phase_exponent=w[0] / sympy.pi, exponent=w[1] / sympy.pi).on(q),
        cirq.ZPowGate(exponent=w[2] / sympy.pi).on(q),
    ]


def _cnot_ring(qs: Sequence[cirq.Qid]) -> list[cirq.Operation]:
    n = len(qs)
    if n == 2:
        return [cirq.CNOT(qs[0], qs[1]), cirq.CNOT(qs[1], qs[0])]
    return [cirq.CNOT(qs[i], qs[(i + 1) % n]) for i in range(n)]


def ansatz(
    qs: Sequence[cirq.Qid],
    layers: int,
    *,
    inputs: Sequence[sympy.Symbol] | None = None,
) -> cirq.Circuit:
    """The hardware-efficient ansatz; with `inputs` (angle re-uploading) they precede every layer."""
    n = len(qs)
    ws = weight_symbols(n, layers)
    circuit = cirq.Circuit()
    for l in range(layers):
        if inputs is not None:
            circuit += ANGLE.layer(qs, inputs[l * n : (l + 1) * n])
        for i, q in enumerate(qs):
            circuit += _rotation(q, ws[(l * n + i) * 3 : (l * n + i) * 3 + 3])
        circuit += _cnot_ring(qs)
    return circuit


def readout_ops(qs: Sequence[cirq.Qid]) -> list[cirq.PauliString]:
    """⟨Z⟩ on every qubit, in qubit order."""
    return [cirq.Z(q) for q in qs]


def build_circuit(
    n_qubits: int, layers: int, *, encoding: str = "angle", reupload: bool = False
) -> tuple[cirq.Circuit, list[sympy.Symbol]]:
    """The full model circuit and its *input* symbols (weights are `weight_symbols`).

    Args:
        n_qubits: Number of qubits n.
        layers: Ansatz layers L.
        encoding: A `qmu_core.qnn.encoding` name: ``"angle"`` (Ry(x_i) per qubit) or
            ``"amplitude"`` (state preparation of a real 2^n vector from 2^n - 1 angles).
        reupload: Angle encoding only: encode before every layer.

    Returns:
        ``(circuit, input_symbols)``.

    Raises:
        ConfigError: For an unknown encoding, or re-uploading with amplitude encoding.
    """
    qs = qubits(n_qubits)
    loader = encoding_named(encoding)
    inputs = loader.input_symbols(n_qubits, layers, reupload=reupload)
    if reupload:
        return ansatz(qs, layers, inputs=inputs), inputs
    return loader.prepare(qs, inputs) + ansatz(qs, layers), inputs


def z_signs(n_qubits: int) -> np.ndarray:
    """``(2^n, n)`` float32 table of ``<basis|Z_i|basis> = ±1``, qubit 0 the most significant bit.

    ``probs @ z_signs(n)`` turns basis-state probabilities into ``<Z_i>`` for every qubit.
    """
    idx = np.arange(2**n_qubits)
    return np.stack([1 - 2 * ((idx >> (n_qubits - 1 - i)) & 1) for i in range(n_qubits)], axis=1).astype(np.float32)
