"""The diagonal of the quantum Fisher information (QFI) of the circuit weights ``theta``.

For a pure state ``|psi(theta)>`` the QFI is ``F_kl = 4 Re(<d_k psi|d_l psi> - <d_k psi|psi><psi|d_l psi>)``;
its diagonal ``F_kk = 4 (<d_k psi|d_k psi> - |<psi|d_k psi>|^2)`` measures how fast the state moves (in
the Fubini-Study metric) when weight ``k`` moves. It depends on the input record (its encoded state), not
on the label or the read-out, and is invariant under global phases.

Exact computation (no sampling, no finite differences): weight ``k`` sits in the single-qubit
rotation ``u = Z**(w2/pi) . PhasedX(w0/pi, w1/pi)`` of qubit ``q`` in layer ``l`` (`qmu_core.qnn.circuits`).
Let ``phi`` be the state right after layer ``l``'s rotations. Then ``d_k psi = V (A_k phi)`` with
``A_k = (d_k u) u^dagger`` acting on qubit ``q`` and ``V`` the (unitary) rest of the circuit, so ``V``
drops out of both inner products and, with ``rho`` the reduced density matrix of qubit ``q`` in ``phi``::

    F_kk = 4 (Tr(rho A_k^dagger A_k) - |Tr(rho A_k)|^2) = 4 Var_rho(G_k),   G_k = i A_k (Hermitian).

One forward sweep of the state vector per record (numpy, complex128) gives every ``F_kk``.

Scale (weights are angles in radians, as the circuit binds them):

* ``w2`` (``Z**(w2/pi) = diag(1, e^{i w2})``) and ``w1`` (``PhasedX`` exponent, an ``Rx(w1)`` in a
  rotated frame) have generators with eigenvalues ``±1/2`` up to a constant shift, so
  ``F = 1 - <P>^2`` for the rotated Pauli ``P``: ``F`` in ``[0, 1]``;
* ``w0`` (``PhasedX`` phase: ``Rz(w0) Rx(w1) Rz(-w0)``) has generator ``(Z - u Z u^dagger)/2`` with
  eigenvalues ``±|sin(w1/2)|``, so ``F`` in ``[0, 4 sin^2(w1/2)]`` (up to 4).

Cost, counted in `Evals`: one forward simulation per record (``evals.forward(len(x))``), since one
state-vector sweep yields all ``3 n L`` diagonal entries. (On hardware every entry would need its own
circuits, e.g. overlap or parameter-shift measurements; this count is the simulation cost.)

Data re-uploading is not supported for the built-in models (the encoding would sit between the
layers); SSD then uses ``ssd_importance=fisher``.

Model plug-ins (``model.kind`` an installed ``qmu.models`` plug-in, re-uploading circuits included)
bring their own gates: their diagonal comes from `qmu_core.unlearning.circuit_qfi`, also from state
vectors with no sampling (a forward sweep carrying one derivative state per weight symbol; each
gate's derivative a central difference of its small unitary, error ~1e-10), at ``1 + K`` forward
simulations per record for ``K`` weight symbols.
"""

from __future__ import annotations

import numpy as np

from qmu_core._tf import tf
from qmu_core.errors import ConfigError
from qmu_core.qnn.backends.dense import cnot_ring_permutation
from qmu_core.qnn.models import QNN
from qmu_core.unlearning.base import Evals
from qmu_core.unlearning.circuit_qfi import circuit_qfi_diagonal

__all__ = ["encoded_states", "qfi_diagonal", "rotation_and_derivatives"]


def rotation_and_derivatives(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation ``Z**(w2/pi) . PhasedX(w0/pi, w1/pi)`` (global phase dropped) and its derivatives.

    Args:
        w: ``(..., 3)`` angles ``(w0, w1, w2)``.

    Returns:
        ``(u, du)``: ``u`` of shape ``(..., 2, 2)`` and ``du[..., j, :, :] = d u / d w_j``, shape
        ``(..., 3, 2, 2)``, complex128. Same matrix as `qmu_core.qnn.backends.dense.DenseBackend`.
    """
    w = np.asarray(w, np.float64)
    w0, w1, w2 = w[..., 0], w[..., 1], w[..., 2]
    c, s = np.cos(w1 / 2) + 0j, -1j * np.sin(w1 / 2)
    dc, ds = -np.sin(w1 / 2) / 2 + 0j, -1j * np.cos(w1 / 2) / 2
    e0, e2 = np.exp(1j * w0), np.exp(1j * w2)

    def matrix(a: np.ndarray, b: np.ndarray, cc: np.ndarray, d: np.ndarray) -> np.ndarray:
        return np.stack([np.stack([a, b], -1), np.stack([cc, d], -1)], -2)

    zero = np.zeros_like(c)
    u = matrix(c, s * np.conj(e0), e2 * s * e0, e2 * c)
    du0 = matrix(zero, -1j * s * np.conj(e0), 1j * e2 * s * e0, zero)
    du1 = matrix(dc, ds * np.conj(e0), e2 * ds * e0, e2 * dc)
    du2 = matrix(zero, zero, 1j * e2 * s * e0, 1j * e2 * c)
    return u, np.stack([du0, du1, du2], -3)


def encoded_states(model: QNN, x: np.ndarray) -> np.ndarray:
    """The states the encoding prepares for model inputs `x`, ``(B, 2^n)`` complex128, unit norm.

    The HQNN's inputs pass through its CNN front end first; the rule is the encoding's
    (`qmu_core.qnn.encoding.Encoding.states_tf`, renormalized in float64).
    """
    features = model.front_end(tf.constant(np.asarray(x, np.float32)))
    states = model.encoding.states_tf(features).numpy().astype(np.complex128)
    return states / np.linalg.norm(states, axis=1, keepdims=True)


def _apply_one_qubit(state: np.ndarray, u: np.ndarray, q: int) -> np.ndarray:
    """Apply the 2x2 `u` to qubit `q` of `state` shaped ``(B, 2, ..., 2)``."""
    return np.moveaxis(np.tensordot(state, u, axes=([q + 1], [1])), -1, q + 1)


def qfi_diagonal(model: QNN, x: np.ndarray, evals: Evals, *, batch_size: int = 256) -> np.ndarray:
    """Diagonal of the QFI of ``theta`` (module doc), averaged over the records `x`.

    Args:
        model: A QNN or HQNN without data re-uploading, or a model plug-in (`qmu_core.unlearning.circuit_qfi`).
        x: Model inputs (features or pixels), ``(N, d)``.
        evals: Counts one forward simulation per record (``1 + K`` for a plug-in with ``K`` weights).
        batch_size: Records simulated together.

    Returns:
        ``(len(theta),)`` float64, in the order of ``theta``; zeros for ``N = 0``.

    Raises:
        ConfigError: For ``model.reupload`` (built-in models).
    """
    cfg = model.cfg
    if cfg.is_plugin:
        return _plugin_qfi_diagonal(model, x, evals, batch_size=batch_size)
    if cfg.reupload:
        raise ConfigError(
            "The QFI importance needs model.reupload=false (the encoding must precede the ansatz); "
            "use unlearn.ssd_importance=fisher for models with data re-uploading."
        )
    n, layers = cfg.n_qubits, cfg.layers
    theta = model.variables["theta"].numpy().astype(np.float64).reshape(layers, n, 3)
    u, du = rotation_and_derivatives(theta)  # (L, n, 2, 2), (L, n, 3, 2, 2)
    gen = du @ np.conj(np.swapaxes(u, -1, -2))[:, :, None]  # A = du u^dagger, (L, n, 3, 2, 2)
    gen_sq = np.conj(np.swapaxes(gen, -1, -2)) @ gen  # A^dagger A
    perm = cnot_ring_permutation(n)
    total = np.zeros((layers, n, 3), np.float64)
    for i in range(0, len(x), batch_size):
        state = encoded_states(model, x[i : i + batch_size])
        b = len(state)
        for l in range(layers):
            state = state.reshape((b,) + (2,) * n)
            for q in range(n):
                state = _apply_one_qubit(state, u[l, q], q)
            for q in range(n):
                moved = np.moveaxis(state, q + 1, 1).reshape(b, 2, -1)
                rho = np.einsum("bak,bck->bac", moved, np.conj(moved))  # reduced state of qubit q
                mean_a = np.einsum("bac,jca->bj", rho, gen[l, q])  # Tr(rho A_j)
                mean_a2 = np.einsum("bac,jca->bj", rho, gen_sq[l, q]).real  # Tr(rho A_j^dagger A_j)
                var = np.maximum(mean_a2 - np.abs(mean_a) ** 2, 0.0)  # >= 0 up to rounding
                total[l, q] += 4.0 * var.sum(axis=0)
            state = state.reshape(b, -1)[:, perm]
        evals.forward(b)
    return (total / max(len(x), 1)).reshape(-1)


def _plugin_qfi_diagonal(model: QNN, x: np.ndarray, evals: Evals, *, batch_size: int) -> np.ndarray:
    """A model plug-in's diagonal (`circuit_qfi_diagonal` on its circuit), averaged over the records `x`."""
    k = len(model.weight_symbols)
    if len(x) == 0:
        return np.zeros(k, np.float64)
    features = model.front_end(tf.constant(np.asarray(x, np.float32))).numpy().astype(np.float64)
    theta = model.variables["theta"].numpy().astype(np.float64)
    per_record = circuit_qfi_diagonal(
        model.circuit, model.input_symbols, model.weight_symbols, features, theta, batch_size=batch_size
    )
    evals.forward((1 + k) * len(x))
    return per_record.mean(axis=0)
