"""An example QMU model plug-in: ``reupload_ring``, a data re-uploading circuit.

On ``model.n_qubits`` qubits and ``model.layers`` layers, every layer is

* angle encoding: ``Ry(x_i)`` on qubit ``i`` (the same features ``x_0 .. x_{n-1}`` before every layer);
* trainable rotations ``Ry(u_l_i) Rz(v_l_i)`` on every qubit;
* a CZ ring ``CZ(0, 1) CZ(1, 2) ... CZ(n-1, 0)`` (a single CZ for two qubits).

The read-out is ``Z_i`` on every qubit, then the mean nearest-neighbour correlation
``(1/n) sum_i Z_i Z_{i+1}`` around the ring (a `cirq.PauliSum`), so the head reads ``n + 1`` values.

QMU finds it through the entry point ``reupload_ring`` in the group ``qmu.models``
(``pyproject.toml``) and calls `factory` with the run's `qmu_core.config.ModelConfig`.
"""

from __future__ import annotations

from typing import Any

import cirq
import sympy

from qmu_core.plugins import CircuitModel

__all__ = ["factory", "reupload_ring"]


def reupload_ring(n_qubits: int, layers: int) -> CircuitModel:
    """The re-uploading ring circuit on `n_qubits` qubits with `layers` layers (module doc)."""
    qs = cirq.LineQubit.range(n_qubits)
    xs = tuple(sympy.Symbol(f"x_{i}") for i in range(n_qubits))
    weights: list[sympy.Symbol] = []
    circuit = cirq.Circuit()
    for layer in range(layers):
        circuit += [cirq.ry(x).on(q) for q, x in zip(qs, xs, strict=True)]
        for i, q in enumerate(qs):
            u, v = sympy.Symbol(f"u_{layer}_{i}"), sympy.Symbol(f"v_{layer}_{i}")
            weights += [u, v]
            circuit += [cirq.ry(u).on(q), cirq.rz(v).on(q)]
        pairs = [(0, 1)] if n_qubits == 2 else [(i, (i + 1) % n_qubits) for i in range(n_qubits)]
        circuit += [cirq.CZ(qs[a], qs[b]) for a, b in pairs]
    ring = sum(
        (cirq.Z(qs[a]) * cirq.Z(qs[b]) / len(pairs) for a, b in pairs),
        start=cirq.PauliSum(),
    )
    readout: tuple[Any, ...] = (*(cirq.Z(q) for q in qs), ring)
    return CircuitModel(circuit=circuit, input_symbols=xs, weight_symbols=tuple(weights), readout=readout)


def factory(model: Any) -> CircuitModel:
    """QMU's entry point: the circuit for the model section `model` (its ``n_qubits`` and ``layers``)."""
    return reupload_ring(int(model.n_qubits), int(model.layers))
