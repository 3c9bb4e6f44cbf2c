"""The emulator's arithmetic: Pauli transfer matrices, their fusion, and propagation to the read-out.

The math of `qmu_core.hardware.emulator` (as Cirq keeps ``density_matrix_utils`` apart from its
simulator); `qmu_core.hardware.planning` decides what to apply to which circuits.

* `ptm_from_kraus`, `reorder`: a channel's real Pauli transfer matrix (``4^k x 4^k``) and the
  same matrix for another order of its qubits;
* `fuse`: a sequence of (qubits, transfer matrix) merged greedily into a few operations on at
  most `FUSE_QUBITS` qubits (exact: every operation in between acts on other qubits);
* `propagate`: fused operations applied to a batch of states (forward) or of measurement
  covectors (backward); `prefix_states`: the states after each circuit's own prefix, built from
  per-qubit factors; `transfer_matrix`: the covectors of a circuit suffix, in chunks;
* `readout_forward`, `observables`, `finish`: from states (or through covectors) to the
  probabilities of the measured bits (`Readout`);
* `common_suffix`, `suffix_clusters`: circuits grouped by the moments they share at the end.

Per qubit, density-matrix entry ``a = 2 r + c`` (row r, column c) maps to the Pauli coefficient
P in (I, X, Y, Z): ``r_P = tr(P rho)``. NumPy only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cirq
import numpy as np

__all__ = [
    "FUSE_QUBITS",
    "ZERO",
    "FusedOp",
    "Readout",
    "common_suffix",
    "finish",
    "fuse",
    "observables",
    "prefix_states",
    "propagate",
    "ptm_from_kraus",
    "readout_forward",
    "reorder",
    "suffix_clusters",
    "to_system_order",
    "transfer_matrix",
]

FUSE_QUBITS = 3
"""Fused operations act on at most this many qubits (64 x 64 transfer matrices)."""

_PAULIS = np.array(
    [[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]],
    dtype=np.complex128,
)
# Per qubit, density-matrix entry a = 2 r + c (row r, column c) <-> Pauli coefficient P in (I, X, Y, Z):
# r_P = tr(P rho) = sum_rc P[c, r] rho[r, c] and rho[r, c] = sum_P P[r, c] r_P / 2.
_TO_PAULI = np.array([[p[c, r] for r in (0, 1) for c in (0, 1)] for p in _PAULIS])
_FROM_PAULI = np.array([[p[r, c] / 2 for p in _PAULIS] for r in (0, 1) for c in (0, 1)])
ZERO = np.array([1.0, 0.0, 0.0, 1.0])  # |0><0| = (I + Z) / 2 as Pauli coefficients
# p(bit) of a measured qubit: (r_I + r_Z) / 2 and (r_I - r_Z) / 2.
_MEASURE = np.array([[0.5, 0.0, 0.0, 0.5], [0.5, 0.0, 0.0, -0.5]])
_TRACE = np.array([[1.0, 0.0, 0.0, 0.0]])  # an unmeasured qubit is traced out
_BIT_WHT = np.array([[0.5, 0.5], [0.5, -0.5]])  # (r_I, r_Z) -> (p0, p1)


# ---------------------------------------------------------------------------- transfer matrices

_BASES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _pauli_basis(k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k-qubit change of basis to Pauli coefficients and back (per-qubit index ``2 r + c``)."""
    if k not in _BASES:
        to = np.ones((1, 1), dtype=np.complex128)
        back = np.ones((1, 1), dtype=np.complex128)
        for _ in range(k):
            to, back = np.kron(to, _TO_PAULI), np.kron(back, _FROM_PAULI)
        _BASES[k] = (to, back)
    return _BASES[k]


def ptm_from_kraus(kraus: Sequence[np.ndarray], k: int) -> np.ndarray:
    """The Pauli transfer matrix (``4^k x 4^k``, complex before the caller's check) of a channel."""
    d = 2**k
    ks = np.asarray(kraus, dtype=np.complex128).reshape(-1, d, d)
    # sum_K K (x) conj(K): the superoperator on the row-major vec(rho), index (rows..., columns...)
    sup = np.einsum("kab,kcd->acbd", ks, ks.conj())
    if k > 1:
        per_qubit = [ax for q in range(k) for ax in (q, k + q)]
        sup = sup.reshape((2,) * (4 * k)).transpose(per_qubit + [2 * k + ax for ax in per_qubit])
    to, back = _pauli_basis(k)
    return to @ sup.reshape(d * d, d * d) @ back


def reorder(ptm: np.ndarray, src: Sequence[int], dst: Sequence[int]) -> np.ndarray:
    """A transfer matrix on qubits `src` (in that order) rewritten for the order `dst` (same qubits)."""
    if tuple(src) == tuple(dst):
        return ptm
    k = len(src)
    perm = [list(src).index(q) for q in dst]
    t = ptm.reshape((4,) * (2 * k)).transpose(perm + [k + p for p in perm])
    return np.ascontiguousarray(t).reshape(4**k, 4**k)


def _embed(ptm: np.ndarray, qubits: Sequence[int], union: Sequence[int]) -> np.ndarray:
    """A transfer matrix on `qubits` as one on the larger set `union` (identity elsewhere)."""
    if tuple(qubits) == tuple(union):
        return ptm
    extra = [q for q in union if q not in qubits]
    return reorder(np.kron(ptm, np.eye(4 ** len(extra))), list(qubits) + extra, union)


def _compose(small: np.ndarray, sq: Sequence[int], big: np.ndarray, bq: Sequence[int], *, left: bool) -> np.ndarray:
    """``embed(small) @ big`` (`left`) or ``big @ embed(small)``, for qubits `sq` within `bq`.

    Computed without building the embedding (a contraction over the small operation's axes only).
    """
    ks, kb = len(sq), len(bq)
    d = 4**kb
    where = [list(bq).index(q) for q in sq]
    s4 = small.reshape((4,) * (2 * ks))
    if left:
        out = np.tensordot(s4, big.reshape((4,) * kb + (d,)), axes=(list(range(ks, 2 * ks)), where))
        out = np.moveaxis(out, list(range(ks)), where)
    else:
        out = np.tensordot(big.reshape((d,) + (4,) * kb), s4, axes=([1 + w for w in where], list(range(ks))))
        out = np.moveaxis(out, list(range(out.ndim - ks, out.ndim)), [1 + w for w in where])
    return np.ascontiguousarray(out).reshape(d, d)


@dataclass
class FusedOp:
    """One fused operation: system positions (sorted) and its float64 transfer matrix."""

    qubits: tuple[int, ...]
    ptm: np.ndarray


def fuse(items: Iterable[tuple[tuple[int, ...], np.ndarray]], limit: int = FUSE_QUBITS) -> list[FusedOp]:
    """Greedy fusion of a sequence of (qubits, transfer matrix) into few wider operations.

    A single-qubit operation is absorbed into the last operation on its qubit (or, before any,
    into the first multi-qubit one); a multi-qubit operation is merged into the most recent
    operation touching any of its qubits when the union has at most `limit` qubits. Both are exact:
    every operation in between acts on other qubits and commutes with the moved one.
    """
    plan: list[FusedOp] = []
    last: dict[int, int] = {}
    pending: dict[int, np.ndarray] = {}
    for qubits, ptm in items:
        if len(qubits) == 1:
            q = qubits[0]
            j = last.get(q)
            if j is None:
                pending[q] = ptm @ pending[q] if q in pending else ptm
            else:
                target = plan[j]
                target.ptm = _compose(ptm, qubits, target.ptm, target.qubits, left=True)
            continue
        for q in qubits:
            if q in pending:
                ptm = _compose(pending.pop(q), (q,), ptm, qubits, left=False)
        j = max((last[q] for q in qubits if q in last), default=-1)
        if j >= 0:
            target = plan[j]
            union = tuple(sorted(set(target.qubits) | set(qubits)))
            if union == target.qubits:
                target.ptm = _compose(ptm, qubits, target.ptm, target.qubits, left=True)
            elif union == qubits:
                target.ptm = _compose(target.ptm, target.qubits, ptm, qubits, left=False)
            elif len(union) <= limit:
                target.ptm = _embed(ptm, qubits, union) @ _embed(target.ptm, target.qubits, union)
            else:
                j = -1
            if j >= 0:
                target.qubits = union
                for q in qubits:
                    last[q] = j
                continue
        plan.append(FusedOp(qubits, ptm))
        for q in qubits:
            last[q] = len(plan) - 1
    plan.extend(FusedOp((q,), ptm) for q, ptm in sorted(pending.items()))
    return plan


# ---------------------------------------------------------------------------- read-out and suffixes


@dataclass(frozen=True)
class Readout:
    """Measurement keys in circuit order, their sizes, the measured system positions in bit order."""

    keys: tuple[str, ...]
    sizes: tuple[int, ...]
    qubits: tuple[int, ...]
    invert: tuple[bool, ...]
    ops: frozenset[tuple[str, tuple[cirq.Qid, ...], tuple[bool, ...]]]


def common_suffix(seqs: Sequence[tuple[int, ...]]) -> int:
    """Length of the longest common suffix of integer sequences."""
    ref = seqs[0]
    length = len(ref)
    for s in seqs[1:]:
        length = min(length, len(s))
        if length and s[len(s) - length :] == ref[len(ref) - length :]:
            continue
        k = 0
        while k < length and s[-1 - k] == ref[-1 - k]:
            k += 1
        length = k
    return length


def suffix_clusters(seqs: Sequence[tuple[int, ...]]) -> list[list[int]]:
    """Indices of `seqs` grouped so that each group shares a long common suffix.

    A set is split at the first position (from the end) where its members differ, by their
    element there, when that gives at most half as many parts as members (several models' records
    in one batch); circuits that differ there one by one (records that differ only in their first
    moment) stay together. Parts are split again the same way.
    """
    out: list[list[int]] = []
    stack = [list(range(len(seqs)))]
    while stack:
        idx = stack.pop()
        length = common_suffix([seqs[i] for i in idx])
        parts: dict[int, list[int]] = defaultdict(list)
        for i in idx:
            s = seqs[i]
            parts[s[len(s) - length - 1] if len(s) > length else -1].append(i)
        if len(idx) < 4 or not 1 < len(parts) <= len(idx) // 2:
            out.append(idx)
        else:
            stack.extend(parts.values())
    return out


# ---------------------------------------------------------------------------- propagation


def propagate(x: np.ndarray, ops: Sequence[FusedOp], n: int, real: np.dtype, *, backward: bool) -> tuple:
    """Apply fused operations to a batch ``(4^n, b)``: forward to states, backward to covectors.

    The batch is the last (contiguous) axis, so the transposes that bring an operation's qubit
    axes to the front move whole blocks of the batch. Returns the result as ``(4, ..., 4, b)``
    and the system position of each qubit axis (axes stay where the last product put them).
    """
    b = x.shape[-1]
    x = x.reshape((4,) * n + (b,))
    order = list(range(n))
    for op in reversed(ops) if backward else ops:
        qs, k = op.qubits, len(op.qubits)
        head = order[:k]
        if sorted(head) == list(qs):  # already the leading axes: one matrix product, no transpose
            m = reorder(op.ptm, qs, head).astype(real, copy=False)
            x = ((m.T if backward else m) @ x.reshape(4**k, -1)).reshape(x.shape)
            continue
        tensor = op.ptm.astype(real, copy=False).reshape((4,) * (2 * k))
        contracted = list(range(k)) if backward else list(range(k, 2 * k))
        x = np.tensordot(tensor, x, axes=(contracted, [order.index(q) for q in qs]))
        order = list(qs) + [q for q in order if q not in qs]
    return x, order


def to_system_order(x: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """``(4, ..., 4, b)`` with qubit axes in `order` -> ``(4^n, b)`` in system order."""
    perm = [list(order).index(q) for q in range(len(order))] + [len(order)]
    return np.ascontiguousarray(x.transpose(perm)).reshape(-1, x.shape[-1])


def readout_forward(x: np.ndarray, order: Sequence[int], readout: Readout) -> np.ndarray:
    """``(b, 2^m)`` probabilities (bits in measurement order, before invert masks) of final states."""
    b = x.shape[-1]
    bit_of = {q: i for i, q in enumerate(readout.qubits)}
    for j, q in enumerate(order):  # keep r_I and r_Z of measured qubits, r_I of traced-out ones
        x = np.take(x, [0, 3] if q in bit_of else [0], axis=j)
    m = len(readout.qubits)
    x = x.reshape((2,) * m + (b,))
    for i in range(m):
        x = np.moveaxis(np.tensordot(_BIT_WHT.astype(x.dtype), x, axes=([1], [i])), 0, i)
    present = [q for q in order if q in bit_of]
    perm = [m] + [present.index(q) for q in readout.qubits]
    return x.transpose(perm).reshape(b, 2**m)


def observables(n: int, readout: Readout, real: np.dtype, lo: int = 0, count: int = 0) -> np.ndarray:
    """Measurement covectors ``lo .. lo + count - 1`` as columns ``(4^n, count)`` (all ``2^m`` by default).

    Column ``x`` is the projector on bits ``x`` (measurement order, big-endian), the trace on
    unmeasured qubits. `count` is a power of two and `lo` a multiple of it, so the chunk fixes the
    high bits and runs over the low ones.
    """
    bit_of = {q: i for i, q in enumerate(readout.qubits)}
    m = len(readout.qubits)
    count = count or 2**m
    low = count.bit_length() - 1
    out = np.ones((1, 1), dtype=real)
    for q in range(n):  # rows in system order; columns: the free bits in system order
        if q not in bit_of:
            factor = _TRACE.T
        elif bit_of[q] >= m - low:
            factor = _MEASURE.T
        else:
            factor = _MEASURE[(lo >> (m - 1 - bit_of[q])) & 1][:, None]
        out = np.kron(out, factor.astype(real))
    free = [q for q in readout.qubits if bit_of[q] >= m - low]
    perm = [0] + [1 + sorted(free).index(q) for q in free]
    return np.ascontiguousarray(out.reshape((4**n,) + (2,) * low).transpose(perm)).reshape(4**n, count)


def finish(p_raw: np.ndarray, readout: Readout) -> np.ndarray:
    """Float64 rows: invert masks applied, tiny negatives clipped, renormalised."""
    b = p_raw.shape[0]
    m = len(readout.qubits)
    p = np.asarray(p_raw, dtype=np.float64)
    flips = [i + 1 for i, inv in enumerate(readout.invert) if inv]
    if flips:
        p = np.flip(p.reshape((b,) + (2,) * m), axis=flips).reshape(b, 2**m)
    p = np.clip(p, 0.0, None)
    total = p.sum(axis=1, keepdims=True)
    return p / np.where(total > 0, total, 1.0)


def prefix_states(plans: Sequence[list[FusedOp]], n: int, real: np.dtype) -> np.ndarray:
    """States ``(4^n, len(plans))`` (one column per circuit) after each circuit's own prefix.

    Circuits whose prefixes have the same shape are run together with stacked matrices; qubits
    stay separate factors until a multi-qubit operation joins them, so single-qubit prefixes
    cost no more than building the final product state.
    """
    out = np.empty((4**n, len(plans)), dtype=real)
    shapes: dict[tuple[tuple[int, ...], ...], list[int]] = defaultdict(list)
    for i, plan in enumerate(plans):
        shapes[tuple(op.qubits for op in plan)].append(i)
    for shape, members in shapes.items():
        g = len(members)
        # factors: qubits (axis order) and an array (g, 4, ..., 4), batch first for np.matmul
        factors: dict[int, tuple[list[int], np.ndarray]] = {
            q: ([q], np.broadcast_to(ZERO.astype(real), (g, 4))) for q in range(n)
        }
        owner = {q: q for q in range(n)}
        for j, qs in enumerate(shape):
            mats = np.stack([plans[i][j].ptm for i in members]).astype(real)
            heads = sorted({owner[q] for q in qs})
            qubits, arr = factors.pop(heads[0])
            for h in heads[1:]:
                more, other = factors.pop(h)
                qubits = qubits + more
                arr = (arr.reshape(g, -1, 1) * other.reshape(g, 1, -1)).reshape((g,) + (4,) * len(qubits))
            axes = [qubits.index(q) + 1 for q in qs]
            rest = [ax for ax in range(1, len(qubits) + 1) if ax not in axes]
            x = np.ascontiguousarray(arr.reshape((g,) + (4,) * len(qubits)).transpose([0] + rest + axes))
            x = np.matmul(x.reshape(g, -1, 4 ** len(qs)), mats.transpose(0, 2, 1))
            qubits = [qubits[ax - 1] for ax in rest] + list(qs)
            factors[heads[0]] = (qubits, x.reshape((g,) + (4,) * len(qubits)))
            for q in qubits:
                owner[q] = heads[0]
        # the product of the factors, batch last, in system order when the factors allow it
        full_qubits: list[int] = []
        full = np.ones((1, g), dtype=real)
        for head in sorted(factors):
            qubits, arr = factors[head]
            column = np.ascontiguousarray(arr.reshape(g, -1).T)
            full = (full[:, None, :] * column[None, :, :]).reshape(-1, g)
            full_qubits += qubits
        if full_qubits != list(range(n)):
            full = to_system_order(full.reshape((4,) * n + (g,)), full_qubits)
        if g == len(plans):
            return full
        out[:, members] = full
    return out


def transfer_matrix(ops: Sequence[FusedOp], n: int, readout: Readout, budget: int, real: np.dtype) -> np.ndarray:
    """``(4^n, 2^m)``: the measurement covectors propagated backwards through `ops`.

    Columns go in chunks of a power of two, about 4 chunk-sized arrays within `budget`.
    """
    total = 2 ** len(readout.qubits)
    cols = 1 << max(0, (budget // (4 * 4**n * real.itemsize)).bit_length() - 1)
    if cols >= total:
        x, order = propagate(observables(n, readout, real), ops, n, real, backward=True)
        return to_system_order(x, order)
    out = np.empty((4**n, total), dtype=real)
    for lo in range(0, total, cols):
        x, order = propagate(observables(n, readout, real, lo, cols), ops, n, real, backward=True)
        out[:, lo : lo + cols] = to_system_order(x, order)
    return out
