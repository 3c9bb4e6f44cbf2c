"""The QFI diagonal of any Cirq circuit's weight symbols: SSD's ``qfi`` importance for model plug-ins.

A model plug-in (`qmu_core.plugins.CircuitModel`) brings its own gates, so the closed-form generators
of `qmu_core.unlearning.qfi` do not apply. For one record, with the input symbols bound to its
features and the weight symbols to ``theta``, the circuit prepares ``|psi> = U_m ... U_1 |0...0>``
and ``F_kk = 4 (<d_k psi|d_k psi> - |<psi|d_k psi>|^2)`` (the `qmu_core.unlearning.qfi` formula).

Exact computation (no sampling): one forward state-vector sweep over the circuit's operations in
NumPy complex128 carries ``psi`` and one derivative state ``d_k psi`` per weight symbol ``k``. At
operation ``U_j``, every carried state becomes ``U_j`` times itself, and for each weight symbol ``k``
the operation's parameters read (in any expression, e.g. ``2*u``; a symbol may sit in several gates,
e.g. re-uploading), ``(dU_j/d theta_k) psi`` (with ``psi`` the state before ``U_j``) is added to
``d_k psi``: the product rule, so every occurrence of ``k`` contributes its branch. ``dU_j/d theta_k``
is the central difference of the operation's small unitary (``cirq.unitary`` of the resolved
operation, 2x2 or 4x4) with step `STEP` in complex128: truncation ``~ STEP^2`` and rounding
``~ 1e-16 / STEP``, both near 1e-10 for generators of order one. Global phases of Cirq's power
gates (``Z**t = diag(1, e^{i pi t})``) add a multiple of ``psi`` to ``d_k psi``, which the two terms
of ``F_kk`` cancel exactly.

Cost, counted in `Evals`: ``1 + K`` forward simulations per record for ``K`` weight symbols
(``evals.forward((1 + K) * len(x))``): the sweep applies every operation to the state and to each
of the ``K`` derivative states (a derivative state starts at its symbol's first gate, so this is
the full count of a sweep that carries all of them from the start, an upper bound), plus the
``K`` branches ``(dU/d theta_k) psi`` at the gates that read ``k``. Memory: ``(1 + K)`` state
vectors of ``2^n`` amplitudes per record simulated together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cirq
import numpy as np

from qmu_core.errors import ConfigError

__all__ = ["STEP", "circuit_qfi_diagonal"]

STEP = 1e-5
"""Central-difference step (radians) of an operation's unitary with respect to one weight symbol."""

_MAX_AMPLITUDES = 1 << 22
"""Records simulated together: at most this many amplitudes (``(1 + K) * B * 2^n``), 64 MiB of complex128."""


def _unitary(op: cirq.Operation, values: dict[Any, float]) -> np.ndarray:
    """The unitary of `op` with its symbols bound to `values`, complex128."""
    return np.asarray(cirq.unitary(cirq.resolve_parameters(op, cirq.ParamResolver(values))), np.complex128)


def _derivative(op: cirq.Operation, values: dict[Any, float], symbol: Any) -> np.ndarray:
    """``d U / d symbol`` of `op` at `values`, by a central difference with step `STEP`."""
    plus, minus = dict(values), dict(values)
    plus[symbol] = values[symbol] + STEP
    minus[symbol] = values[symbol] - STEP
    return (_unitary(op, plus) - _unitary(op, minus)) / (2 * STEP)


def _apply(states: np.ndarray, u: np.ndarray, axes: list[int]) -> np.ndarray:
    """`u` (``(d, d)``, or ``(B, d, d)`` one per record) on the qubit `axes` of `states` ``(S, B, 2, ..., 2)``."""
    m = len(axes)
    moved = np.moveaxis(states, [a + 2 for a in axes], list(range(states.ndim - m, states.ndim)))
    shape = moved.shape
    flat = moved.reshape(shape[0], shape[1], -1, 2**m)
    out = np.einsum("sbrj,ij->sbri", flat, u) if u.ndim == 2 else np.einsum("sbrj,bij->sbri", flat, u)
    return np.moveaxis(out.reshape(shape), list(range(states.ndim - m, states.ndim)), [a + 2 for a in axes])


def _sweep(
    ops: list[tuple[cirq.Operation, list[int], list[Any], list[int]]],
    inputs: dict[Any, np.ndarray],
    weights: dict[Any, float],
    shape: tuple[int, int, int],
) -> np.ndarray:
    """``F_kk`` of each record of one batch, ``(B, K)``; `inputs` maps input symbols to ``(B,)`` features.

    `shape` is ``(B, n, K)``: records, qubits, weight symbols.
    """
    b, n, k = shape
    states = np.zeros((1 + k, b, 2**n), np.complex128)
    states[0, :, 0] = 1.0
    states = states.reshape((1 + k, b) + (2,) * n)
    for op, axes, symbols, slots in ops:
        reads_input = any(s in inputs for s in symbols)
        if reads_input:  # one unitary per record
            per = [{s: float(inputs[s][i]) if s in inputs else weights[s] for s in symbols} for i in range(b)]
            u = np.stack([_unitary(op, v) for v in per])
            d = [np.stack([_derivative(op, v, w) for v in per]) for w in _named(symbols, slots)]
        else:
            shared = {s: weights[s] for s in symbols}
            u = _unitary(op, shared)
            d = [_derivative(op, shared, s) for s in _named(symbols, slots)]
        before = states[:1]
        branches = [_apply(before, du, axes)[0] for du in d]
        states = _apply(states, u, axes)
        for slot, branch in zip([s for s in slots if s >= 0], branches, strict=True):
            states[1 + slot] += branch
    flat = states.reshape(1 + k, b, -1)
    psi, dpsi = flat[0], flat[1:]
    norm = np.einsum("kbi,kbi->bk", np.conj(dpsi), dpsi).real
    overlap = np.einsum("bi,kbi->bk", np.conj(psi), dpsi)
    return 4.0 * np.maximum(norm - np.abs(overlap) ** 2, 0.0)


def _named(symbols: list[Any], slots: list[int]) -> list[Any]:
    """The weight symbols among an operation's `symbols` (their `slots` are ``>= 0``)."""
    return [s for s, slot in zip(symbols, slots, strict=True) if slot >= 0]


def circuit_qfi_diagonal(
    circuit: cirq.Circuit,
    input_symbols: Sequence[Any],
    weight_symbols: Sequence[Any],
    features: np.ndarray,
    theta: np.ndarray,
    *,
    batch_size: int = 256,
) -> np.ndarray:
    """``F_kk`` of every weight symbol for every record (module doc), exact in complex128.

    Args:
        circuit: The circuit, on the qubits it acts on (sorted, Cirq's big-endian order), from ``|0...0>``.
        input_symbols: Symbols bound to the feature columns, in order.
        weight_symbols: Symbols bound to `theta`, in order.
        features: ``(N, len(input_symbols))`` values of the input symbols.
        theta: ``(len(weight_symbols),)`` values of the weight symbols.
        batch_size: Records simulated together (fewer if ``(1 + K) * B * 2^n`` amplitudes would exceed 2^22).

    Returns:
        ``(N, K)`` float64, ``K = len(weight_symbols)``.

    Raises:
        ConfigError: If an operation has no unitary (a measurement, a channel) or reads an unbound symbol.
    """
    qubits = sorted(circuit.all_qubits())
    index = {q: i for i, q in enumerate(qubits)}
    n, k = len(qubits), len(weight_symbols)
    slot_of = {s: i for i, s in enumerate(weight_symbols)}
    known = set(input_symbols) | set(weight_symbols)
    ops: list[tuple[cirq.Operation, list[int], list[Any], list[int]]] = []
    for op in circuit.all_operations():
        symbols = sorted(cirq.parameter_symbols(op), key=str)
        unknown = [str(s) for s in symbols if s not in known]
        if unknown:
            raise ConfigError(
                f"The QFI cannot bind the symbols {unknown} of the operation {op}: the plug-in's circuit uses symbols "
                "that are neither its inputs nor its weights. Fix the plug-in, or set unlearn.ssd_importance=fisher."
            )
        if not symbols and not cirq.has_unitary(op):
            raise ConfigError(
                f"The QFI needs a unitary circuit; the operation {op} has no unitary (a measurement or a channel). "
                "Set unlearn.ssd_importance=fisher for this model."
            )
        ops.append((op, [index[q] for q in op.qubits], symbols, [slot_of.get(s, -1) for s in symbols]))
    features = np.asarray(features, np.float64).reshape(len(features), len(input_symbols))
    weights = dict(zip(weight_symbols, np.asarray(theta, np.float64).tolist(), strict=True))
    step = max(1, min(batch_size, _MAX_AMPLITUDES // ((1 + k) * 2**n)))
    out = np.zeros((len(features), k), np.float64)
    for i in range(0, len(features), step):
        chunk = features[i : i + step]
        inputs = {s: chunk[:, j] for j, s in enumerate(input_symbols)}
        try:
            out[i : i + len(chunk)] = _sweep(ops, inputs, weights, (len(chunk), n, k))
        except TypeError as err:  # cirq.unitary of an operation without one
            raise ConfigError(
                f"The QFI needs a unitary circuit: {err}. Set unlearn.ssd_importance=fisher for this model."
            ) from err
    return out
