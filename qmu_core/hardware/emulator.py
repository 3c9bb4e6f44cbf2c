"""A fast noisy emulator: exact measurement distributions under a `cirq.NoiseModel`, then sampling.

Google's noisy quantum virtual machine (qsim trajectories) samples at about 200 shots/s, far too
slow to audit a model (1,000 records x 1,000 shots). `DensityMatrixEmulator` computes each
circuit's *exact* distribution over its measured bits, noise included, with a batched
density-matrix simulation, and then draws the shots from it. It is a `cirq.Sampler`, so it works
wherever one is used (``run``, ``run_sweep``, ``run_batch``, `qmu_core.hardware.sampling`).
TensorFlow-free: Cirq and NumPy only.

How it works:

1. **Noise, once per distinct moment.** The noise model is applied moment by moment,
   ``noise.noisy_moments([moment], system_qubits)``, cached by (moment, qubits). This equals applying
   it to the whole circuit (what ``cirq.DensityMatrixSimulator(noise=...)`` and qsim do) for every
   model that treats moments independently. One exception in Cirq needs care:
   ``cirq.devices.NoiseModelFromNoiseProperties`` (Google's device models) ignores `system_qubits`
   and takes the qubits from the circuit it is given, so on a lone moment it would leave out the
   thermal noise of idle qubits; the emulator pads such moments with one tagged identity on the
   idle qubits and drops it afterwards. Readout noise the model inserts before measurements is
   kept; noise after a terminal measurement cannot change the bits and is dropped.
2. **Pauli transfer matrices, fused.** Every noisy operation becomes its real Pauli transfer
   matrix (PTM, ``4^k x 4^k``, from its Kraus operators). Single-qubit PTMs are absorbed into the
   last (or next) multi-qubit operation on their qubit, and an operation is merged into the most
   recent operation touching its qubits while the union has at most `FUSE_QUBITS` qubits: an
   8-qubit, 10-layer compiled circuit (3,700 noisy operations on rainbow) becomes 40 fused
   operations. PTMs are real, so states are real ``4^n`` vectors: half the memory and a quarter of
   the arithmetic of complex superoperators.
3. **Shared suffixes.** Circuits of a batch on the same qubits that measure the same way are
   grouped by common suffix (several models' records in one batch form one group per model), and
   each circuit of a group is split into its own prefix and the group's longest common suffix of
   moments (records usually differ only in their encoding moment at the start). Prefixes are
   propagated per circuit (as products of per-qubit factors while no multi-qubit operation joins
   them, batched over circuits whose prefixes have the same shape), then the suffix is applied
   with one fused plan, either *forward* (states through the suffix, chunked to stay under
   `max_batch_bytes`), or through its *transfer matrix*: the ``2^m`` measurement projectors
   propagated backwards through the suffix once (Heisenberg picture), after which every circuit
   costs one matrix product. The transfer matrix is used once the circuits seen with that suffix
   reach ``2^m`` (ski rental: never more than twice the cheaper choice's cost), and is kept for
   the next call. Identical circuits are computed once. Circuits with nothing in common still
   work, just slower (each is then a prefix of its own).
4. Precision follows `dtype`: ``complex64`` computes in float32 (probabilities good to about
   ``1e-5`` after hundreds of operations), ``complex128`` in float64.

Limits: at most `MAX_QUBITS` qubits per circuit (all of them qubits, not qudits), operations on at
most 4 qubits, concrete (resolved) circuits whose measurements are all terminal
`cirq.MeasurementGate` s (one or more keys, each key once, no confusion maps), no classically
controlled operations.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cirq
import numpy as np

from qmu_core.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_BATCH_BYTES",
    "FUSE_QUBITS",
    "MAX_QUBITS",
    "DensityMatrixEmulator",
]

MAX_QUBITS = 12
"""Most qubits per circuit: one density matrix of 12 qubits is 4^12 real numbers (64 MiB in float32)."""

MAX_OP_QUBITS = 4
"""Most qubits of one (noisy) operation: its transfer matrix is 4^k x 4^k."""

FUSE_QUBITS = 3
"""Fused operations act on at most this many qubits (64 x 64 transfer matrices)."""

DEFAULT_MAX_BATCH_BYTES = 512 * 2**20
"""Default memory budget of the working arrays (states, transfer matrix) of one call."""

_PAD_TAG = "qmu_emulator_idle"
_CACHE_LIMIT = 10_000  # distinct moments (or prefixes) kept between calls before every cache is dropped

_PAULIS = np.array(
    [[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]],
    dtype=np.complex128,
)
# Per qubit, density-matrix entry a = 2 r + c (row r, column c) <-> Pauli coefficient P in (I, X, Y, Z):
# r_P = tr(P rho) = sum_rc P[c, r] rho[r, c] and rho[r, c] = sum_P P[r, c] r_P / 2.
_TO_PAULI = np.array([[p[c, r] for r in (0, 1) for c in (0, 1)] for p in _PAULIS])
_FROM_PAULI = np.array([[p[r, c] / 2 for p in _PAULIS] for r in (0, 1) for c in (0, 1)])
_ZERO = np.array([1.0, 0.0, 0.0, 1.0])  # |0><0| = (I + Z) / 2 as Pauli coefficients
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


def _ptm_from_kraus(kraus: Sequence[np.ndarray], k: int) -> np.ndarray:
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


def _reorder(ptm: np.ndarray, src: Sequence[int], dst: Sequence[int]) -> np.ndarray:
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
    return _reorder(np.kron(ptm, np.eye(4 ** len(extra))), list(qubits) + extra, union)


def _compose(small: np.ndarray, sq: Sequence[int], big: np.ndarray, bq: Sequence[int], *, left: bool) -> np.ndarray:
    """``embed(small) @ big`` (`left`) or ``big @ embed(small)``, for qubits `sq` within `bq`, without
    building the embedding (a contraction over the small operation's axes only)."""
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
class _FusedOp:
    """One fused operation: system positions (sorted) and its float64 transfer matrix."""

    qubits: tuple[int, ...]
    ptm: np.ndarray


def _fuse(items: Iterable[tuple[tuple[int, ...], np.ndarray]], limit: int = FUSE_QUBITS) -> list[_FusedOp]:
    """Greedy fusion of a sequence of (qubits, transfer matrix) into few wider operations.

    A single-qubit operation is absorbed into the last operation on its qubit (or, before any,
    into the first multi-qubit one); a multi-qubit operation is merged into the most recent
    operation touching any of its qubits when the union has at most `limit` qubits. Both are exact:
    every operation in between acts on other qubits and commutes with the moved one.
    """
    plan: list[_FusedOp] = []
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
        plan.append(_FusedOp(qubits, ptm))
        for q in qubits:
            last[q] = len(plan) - 1
    plan.extend(_FusedOp((q,), ptm) for q, ptm in sorted(pending.items()))
    return plan


# ---------------------------------------------------------------------------- circuit analysis


@dataclass(frozen=True)
class _Readout:
    """Measurement keys in circuit order, their sizes, the measured system positions in bit order."""

    keys: tuple[str, ...]
    sizes: tuple[int, ...]
    qubits: tuple[int, ...]
    invert: tuple[bool, ...]
    ops: frozenset[tuple[str, tuple[cirq.Qid, ...], tuple[bool, ...]]]


@dataclass(frozen=True)
class _MomentInfo:
    qubits: frozenset[cirq.Qid]
    measurements: tuple[cirq.Operation, ...]
    circuit_op: bool
    problem: str | None


@dataclass(frozen=True)
class _Analysed:
    system: tuple[cirq.Qid, ...]
    moments: tuple[int, ...]
    readout: _Readout


@dataclass(frozen=True)
class _Step:
    """One noisy operation of a moment on system positions; ``ptm=None`` marks a measurement."""

    qubits: tuple[int, ...]
    ptm: np.ndarray | None
    measurement: tuple[str, tuple[cirq.Qid, ...], tuple[bool, ...]] | None = None


def _measurement_signature(op: cirq.Operation) -> tuple[str, tuple[cirq.Qid, ...], tuple[bool, ...]]:
    return cirq.measurement_key_name(op), tuple(op.qubits), tuple(op.gate.full_invert_mask())


def _common_suffix(seqs: Sequence[tuple[int, ...]]) -> int:
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


def _suffix_clusters(seqs: Sequence[tuple[int, ...]]) -> list[list[int]]:
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
        length = _common_suffix([seqs[i] for i in idx])
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


def _propagate(x: np.ndarray, ops: Sequence[_FusedOp], n: int, real: np.dtype, *, backward: bool) -> tuple:
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
            m = _reorder(op.ptm, qs, head).astype(real, copy=False)
            x = ((m.T if backward else m) @ x.reshape(4**k, -1)).reshape(x.shape)
            continue
        tensor = op.ptm.astype(real, copy=False).reshape((4,) * (2 * k))
        contracted = list(range(k)) if backward else list(range(k, 2 * k))
        x = np.tensordot(tensor, x, axes=(contracted, [order.index(q) for q in qs]))
        order = list(qs) + [q for q in order if q not in qs]
    return x, order


def _to_system_order(x: np.ndarray, order: Sequence[int]) -> np.ndarray:
    """``(4, ..., 4, b)`` with qubit axes in `order` -> ``(4^n, b)`` in system order."""
    perm = [list(order).index(q) for q in range(len(order))] + [len(order)]
    return np.ascontiguousarray(x.transpose(perm)).reshape(-1, x.shape[-1])


def _readout_forward(x: np.ndarray, order: Sequence[int], readout: _Readout) -> np.ndarray:
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


def _observables(n: int, readout: _Readout, real: np.dtype, lo: int = 0, count: int = 0) -> np.ndarray:
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


def _finish(p_raw: np.ndarray, readout: _Readout) -> np.ndarray:
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


# ---------------------------------------------------------------------------- the emulator


@dataclass
class _Caches:
    moments: list[cirq.Moment] = field(default_factory=list)
    moment_ids: dict[cirq.Moment, int] = field(default_factory=dict)
    info: dict[int, _MomentInfo] = field(default_factory=dict)
    steps: dict[tuple[int, tuple[cirq.Qid, ...]], tuple[_Step, ...]] = field(default_factory=dict)
    ptms: dict[Any, np.ndarray] = field(default_factory=dict)
    prefix: dict[tuple[Any, ...], tuple[list[_FusedOp], frozenset[int]]] = field(default_factory=dict)
    suffix: dict[tuple[Any, ...], list[_FusedOp]] = field(default_factory=dict)
    seen: dict[tuple[Any, ...], int] = field(default_factory=dict)
    transfer: dict[tuple[Any, ...], np.ndarray] = field(default_factory=dict)


class DensityMatrixEmulator(cirq.Sampler):
    """A `cirq.Sampler` that samples from exact noisy measurement distributions (see the module doc).

    Args:
        noise: The noise model (or anything ``cirq.NoiseModel.from_noise_model_like`` accepts, e.g.
            a channel applied after every moment); None for noiseless circuits. For Google's
            virtual processors use `qmu_core.hardware.processors.noise_model`.
        seed: Seed of the shot sampling: the same seed and the same calls give the same bits.
        dtype: ``np.complex64`` (float32 arithmetic, fast) or ``np.complex128`` (float64).
        max_batch_bytes: Memory budget of the working arrays of one call (batches of states, the
            transfer matrix kept between calls), about 4 arrays of a batch at a time; caches of
            noisy moments come on top (bounded, dropped after 10,000 distinct moments). At least
            four density matrices of the widest circuit must fit (12 qubits: 256 MiB in complex64).

    Attributes:
        last_stats: Figures of the last call: ``circuits``, ``distinct`` circuits, measurement
            ``layouts``, ``fused_ops_mean`` (fused operations per distinct circuit, prefix and
            suffix), ``forward_groups`` / ``transfer_groups`` (suffix groups run forward or through
            a transfer matrix), ``seconds_prepare`` (analysis, noise, fusion, transfer matrices),
            of which ``seconds_transfer``, and ``seconds_simulate``.
    """

    def __init__(
        self,
        noise: cirq.NoiseModel | None = None,
        *,
        seed: int | None = None,
        dtype: Any = np.complex64,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    ) -> None:
        if noise is None:
            self._noise = cirq.NO_NOISE
        else:
            try:
                self._noise = cirq.NoiseModel.from_noise_model_like(noise)
            except (TypeError, ValueError) as err:
                raise ConfigError(
                    f"noise={noise!r} is not a noise model ({err}); pass a cirq.NoiseModel (e.g. "
                    "qmu_core.hardware.processors.noise_model('rainbow')), a single-qubit channel such as "
                    "cirq.depolarize(0.01), or None."
                ) from err
        kind = np.dtype(dtype)
        self._real: np.dtype[Any]
        if kind in (np.dtype(np.complex64), np.dtype(np.float32)):
            self._real = np.dtype(np.float32)
        elif kind in (np.dtype(np.complex128), np.dtype(np.float64)):
            self._real = np.dtype(np.float64)
        else:
            raise ConfigError(
                f"dtype={kind} is not supported: the emulator computes in single or double precision; "
                "pass np.complex64 (fast) or np.complex128."
            )
        self._dtype = np.dtype(np.complex64) if self._real == np.float32 else np.dtype(np.complex128)
        if not isinstance(max_batch_bytes, int | np.integer) or max_batch_bytes < 2**20:
            raise ConfigError(
                f"max_batch_bytes={max_batch_bytes!r} is too small to hold a batch of density matrices; "
                f"pass at least 1 MiB (default {DEFAULT_MAX_BATCH_BYTES})."
            )
        self._max_bytes = int(max_batch_bytes)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._cache = _Caches()
        self.last_stats: dict[str, float] = {}

    @property
    def noise(self) -> cirq.NoiseModel:
        """The noise model applied to every circuit (``cirq.NO_NOISE`` for none)."""
        return self._noise

    @property
    def dtype(self) -> np.dtype:
        """The precision: ``complex64`` (float32 arithmetic) or ``complex128`` (float64)."""
        return self._dtype

    def __repr__(self) -> str:
        return (
            f"DensityMatrixEmulator(noise={self._noise!r}, seed={self._seed!r}, dtype={self._dtype}, "
            f"max_batch_bytes={self._max_bytes})"
        )

    # ------------------------------------------------------------------ public API

    def probabilities(self, circuits: Iterable[cirq.AbstractCircuit]) -> np.ndarray:
        """Exact distributions over the measured bits, noise included: ``(len(circuits), 2^m)`` float64.

        Bits are in the order of the measurement operations in the circuit (moment by moment; each
        key's qubits in its order), big-endian like Cirq: the first measured qubit is the most
        significant bit. Invert masks are applied; unmeasured qubits are traced out. Rows sum to 1.

        Raises:
            ConfigError: For invalid circuits (see the module doc), no circuits, or circuits that
                measure different numbers of bits.
        """
        if isinstance(circuits, cirq.AbstractCircuit):
            raise ConfigError("probabilities() takes a sequence of circuits, got one circuit; pass [circuit].")
        items = list(circuits)
        if not items:
            raise ConfigError("probabilities() got no circuits; pass at least one measured circuit.")
        found = self._distributions(items)
        widths = sorted({p.size for p, _ in found})
        if len(widths) != 1:
            raise ConfigError(
                f"The circuits measure different numbers of bits (distributions of sizes {widths}); "
                "call probabilities() once per measurement layout, or use run_batch()."
            )
        return np.stack([p for p, _ in found])

    def run_sweep(
        self, program: cirq.AbstractCircuit, params: cirq.Sweepable, repetitions: int = 1
    ) -> Sequence[cirq.Result]:
        """Samples `program` `repetitions` times for every parameter set of `params`."""
        return self.run_batch([program], [params], repetitions)[0]

    async def run_sweep_async(
        self, program: cirq.AbstractCircuit, params: cirq.Sweepable, repetitions: int = 1
    ) -> Sequence[cirq.Result]:
        return self.run_sweep(program, params, repetitions)

    def run_batch(
        self,
        programs: Sequence[cirq.AbstractCircuit],
        params_list: Sequence[cirq.Sweepable] | None = None,
        repetitions: int | Sequence[int] = 1,
    ) -> Sequence[Sequence[cirq.Result]]:
        """Samples all circuits (and parameter sets) of the batch with one batched simulation.

        Same signature and results as ``cirq.Sampler.run_batch``: one list of ``cirq.ResultDict``
        per program, one result per parameter set, each with ``measurements[key]`` of shape
        ``(repetitions, qubits of key)`` and dtype int8 (like ``cirq.Simulator``).
        """
        params_seq, reps = self._normalize_batch_args(programs, params_list, repetitions)
        if any(int(r) < 0 for r in reps):
            raise ConfigError(f"repetitions={list(reps)} has a negative count; pass counts >= 0.")
        flat: list[cirq.AbstractCircuit] = []
        resolvers: list[list[cirq.ParamResolver]] = []
        for program, params in zip(programs, params_seq, strict=True):
            found = list(cirq.to_resolvers(params))
            resolvers.append(found)
            flat += [cirq.resolve_parameters(program, r) for r in found]
        dists = self._distributions(flat) if flat else []
        out: list[list[cirq.Result]] = []
        k = 0
        for found, count in zip(resolvers, reps, strict=True):
            inner = []
            for resolver in found:
                p, readout = dists[k]
                inner.append(self._sample(p, readout, int(count), resolver))
                k += 1
            out.append(inner)
        return out

    async def run_batch_async(
        self,
        programs: Sequence[cirq.AbstractCircuit],
        params_list: Sequence[cirq.Sweepable] | None = None,
        repetitions: int | Sequence[int] = 1,
    ) -> Sequence[Sequence[cirq.Result]]:
        return self.run_batch(programs, params_list, repetitions)

    # ------------------------------------------------------------------ sampling

    def _sample(self, p: np.ndarray, readout: _Readout, repetitions: int, resolver: cirq.ParamResolver) -> cirq.Result:
        m = len(readout.qubits)
        counts = self._rng.multinomial(repetitions, p)
        outcomes = np.repeat(np.arange(p.size, dtype=np.int64), counts)
        self._rng.shuffle(outcomes)
        bits = ((outcomes[:, None] >> np.arange(m - 1, -1, -1)) & 1).astype(np.int8)
        measurements = {}
        start = 0
        for key, size in zip(readout.keys, readout.sizes, strict=True):
            measurements[key] = np.ascontiguousarray(bits[:, start : start + size])
            start += size
        return cirq.ResultDict(params=resolver, measurements=measurements)

    # ------------------------------------------------------------------ analysis

    def _moment_id(self, moment: cirq.Moment, local: dict[int, tuple[cirq.Moment, int]]) -> int:
        hit = local.get(id(moment))
        if hit is not None:
            return hit[1]
        cache = self._cache
        try:
            mid = cache.moment_ids.get(moment)
            hashable = True
        except TypeError:  # a moment with an unhashable operation: no sharing by value
            mid, hashable = None, False
        if mid is None:
            mid = len(cache.moments)
            cache.moments.append(moment)
            if hashable:
                cache.moment_ids[moment] = mid
        local[id(moment)] = (moment, mid)
        return mid

    def _info(self, mid: int) -> _MomentInfo:
        found = self._cache.info.get(mid)
        if found is not None:
            return found
        moment = self._cache.moments[mid]
        measurements: list[cirq.Operation] = []
        problem: str | None = None
        circuit_op = False
        for op in moment:
            if isinstance(op.untagged, cirq.CircuitOperation):
                circuit_op = True
            elif cirq.control_keys(op):
                problem = (
                    f"the operation {op} is classically controlled; the emulator computes one distribution "
                    "per circuit and supports terminal measurements only. Remove the classical control"
                )
            elif cirq.is_parameterized(op):
                problem = (
                    f"the operation {op} has unresolved symbols {sorted(cirq.parameter_names(op))}; resolve "
                    "them first (cirq.resolve_parameters) or pass them through run_sweep's params"
                )
            elif cirq.is_measurement(op):
                gate = op.gate
                if not isinstance(gate, cirq.MeasurementGate):
                    problem = f"the measurement {op} is not a cirq.MeasurementGate; measure with cirq.measure"
                elif gate.confusion_map:
                    problem = (
                        f"the measurement {op} has a confusion map; model readout errors in the noise model "
                        "instead (e.g. qmu_core.hardware.processors.noise_model)"
                    )
                else:
                    measurements.append(op)
            elif len(op.qubits) > MAX_OP_QUBITS:
                problem = (
                    f"the operation {op} acts on {len(op.qubits)} qubits, more than {MAX_OP_QUBITS}; "
                    "decompose it first (cirq.decompose or compile for a device)"
                )
        if problem is None and any(q.dimension != 2 for q in moment.qubits):
            problem = "it acts on qudits (dimension != 2); the emulator handles qubits only"
        info = _MomentInfo(frozenset(moment.qubits), tuple(measurements), circuit_op, problem)
        self._cache.info[mid] = info
        return info

    def _analyse(self, circuit: Any, local: dict[int, tuple[cirq.Moment, int]]) -> _Analysed:
        if not isinstance(circuit, cirq.AbstractCircuit):
            raise ConfigError(f"The emulator samples cirq circuits, got {type(circuit).__name__}; pass cirq.Circuit.")
        mids = [self._moment_id(m, local) for m in circuit.moments]
        infos = [self._info(mid) for mid in mids]
        if any(info.circuit_op for info in infos):
            flat = cirq.unroll_circuit_op(cirq.Circuit(circuit), deep=True, tags_to_check=None)
            mids = [self._moment_id(m, local) for m in flat.moments]
            infos = [self._info(mid) for mid in mids]
        qubits: set[cirq.Qid] = set()
        measurements: list[cirq.Operation] = []
        measured: set[cirq.Qid] = set()
        for index, info in enumerate(infos):
            if info.problem is not None:
                raise ConfigError(f"Moment {index} of a circuit cannot be emulated: {info.problem}.")
            if measured and not measured.isdisjoint(info.qubits):
                raise ConfigError(
                    f"Moment {index} acts on qubits {sorted(measured & info.qubits)} after they were measured; the "
                    "emulator supports terminal measurements only (no mid-circuit measurement). Move the "
                    "measurements to the end of the circuit."
                )
            qubits |= info.qubits
            measurements.extend(info.measurements)
            for op in info.measurements:
                measured.update(op.qubits)
        if not measurements:
            raise ConfigError(
                "A circuit has no measurement, so there is nothing to sample; end it with "
                "cirq.measure(*qubits, key=...)."
            )
        if len(qubits) > MAX_QUBITS:
            raise ConfigError(
                f"A circuit acts on {len(qubits)} qubits; the density-matrix emulator handles at most {MAX_QUBITS} "
                "(a 12-qubit density matrix already has 4^12 entries). Use a state-vector sampler (qsim) for it."
            )
        keys = [cirq.measurement_key_name(op) for op in measurements]
        if len(set(keys)) != len(keys):
            repeated = sorted({k for k in keys if keys.count(k) > 1})
            raise ConfigError(
                f"Measurement keys {repeated} are used more than once; give every measurement its own key."
            )
        system = tuple(sorted(qubits))
        position = {q: i for i, q in enumerate(system)}
        readout = _Readout(
            keys=tuple(keys),
            sizes=tuple(len(op.qubits) for op in measurements),
            qubits=tuple(position[q] for op in measurements for q in op.qubits),
            invert=tuple(b for op in measurements for b in op.gate.full_invert_mask()),
            ops=frozenset(_measurement_signature(op) for op in measurements),
        )
        return _Analysed(system=system, moments=tuple(mids), readout=readout)

    # ------------------------------------------------------------------ noise and transfer matrices

    def _noisy_ops(self, moment: cirq.Moment, system: tuple[cirq.Qid, ...]) -> list[cirq.Operation]:
        noise = self._noise
        if noise is cirq.NO_NOISE:
            return list(moment.operations)
        padded = moment
        if isinstance(noise, cirq.devices.NoiseModelFromNoiseProperties):
            # It takes the qubits from the circuit it is given, not from system_qubits: without the
            # identity, idle qubits of a lone moment would miss their thermal noise. One identity on
            # all idle qubits (not one per qubit): the model matches every operation against its
            # whole table of noisy operations, so each extra operation costs.
            idle = [q for q in system if q not in moment.qubits]
            if idle:
                padded = moment.with_operations(cirq.IdentityGate(len(idle)).on(*idle).with_tags(_PAD_TAG))
        out = noise.noisy_moments([padded], list(system))
        return [op for tree in out for op in cirq.flatten_to_ops(tree) if _PAD_TAG not in op.tags]

    def _op_ptm(self, op: cirq.Operation) -> np.ndarray:
        try:
            found = self._cache.ptms.get(op)
            key: Any = op
        except TypeError:  # e.g. cirq.KrausChannel: keyed by its Kraus operators below
            found, key = None, None
        if found is not None:
            return found
        k = len(op.qubits)
        if k > MAX_OP_QUBITS:
            raise ConfigError(
                f"The noisy operation {op} acts on {k} qubits, more than {MAX_OP_QUBITS}; decompose it first."
            )
        kraus = cirq.kraus(op, default=None)
        if kraus is None:
            raise ConfigError(
                f"The operation {op!r} has no unitary, mixture or Kraus representation, so its effect on a "
                "density matrix is unknown; decompose it into standard gates first (cirq.decompose)."
            )
        if key is None:
            stacked = np.asarray(kraus, dtype=np.complex128)
            key = ("kraus", stacked.shape, stacked.tobytes())
            found = self._cache.ptms.get(key)
            if found is not None:
                return found
        ptm = _ptm_from_kraus(kraus, k)
        if np.abs(ptm.imag).max() > 1e-8:
            raise ConfigError(f"The operation {op!r} does not map density matrices to density matrices.")
        result = np.ascontiguousarray(ptm.real)
        self._cache.ptms[key] = result
        return result

    def _steps(self, mid: int, system: tuple[cirq.Qid, ...]) -> tuple[_Step, ...]:
        key = (mid, system)
        found = self._cache.steps.get(key)
        if found is not None:
            return found
        position = {q: i for i, q in enumerate(system)}
        steps: list[_Step] = []
        for op in self._noisy_ops(self._cache.moments[mid], system):
            if not op.qubits or isinstance(op.gate, cirq.IdentityGate):
                continue
            missing = [q for q in op.qubits if q not in position]
            if missing:
                raise ConfigError(
                    f"The noise model added {op} on qubits {missing} outside the circuit; the emulator keeps the "
                    "circuit's qubits only. Add the qubits to the circuit (e.g. cirq.I) if their noise matters."
                )
            where = [position[q] for q in op.qubits]
            if cirq.is_measurement(op):
                steps.append(_Step(tuple(where), None, _measurement_signature(op)))
                continue
            order = sorted(where)
            steps.append(_Step(tuple(order), _reorder(self._op_ptm(op), where, order)))
        result = tuple(steps)
        self._cache.steps[key] = result
        return result

    def _items(
        self, mids: Sequence[int], system: tuple[cirq.Qid, ...], readout: _Readout, measured: set[int]
    ) -> list[tuple[tuple[int, ...], np.ndarray]]:
        """The noisy operations of moments `mids`; updates `measured` (system positions)."""
        items = []
        for mid in mids:
            for step in self._steps(mid, system):
                if step.ptm is None:
                    if step.measurement not in readout.ops:
                        raise ConfigError(
                            f"The noise model turned the circuit's measurements into {step.measurement}; the "
                            "emulator needs the circuit's own measurement gates to stay as they are."
                        )
                    measured.update(step.qubits)
                    continue
                if measured and not measured.isdisjoint(step.qubits):
                    if measured.issuperset(step.qubits):
                        continue  # noise after the measurement cannot change the recorded bits
                    raise ConfigError(
                        "The noise model couples a measured qubit with one still in use after the measurement; "
                        "measure all qubits in the last moment."
                    )
                items.append((step.qubits, step.ptm))
        return items

    def _prefix_plan(
        self, system: tuple[cirq.Qid, ...], mids: tuple[int, ...], readout: _Readout
    ) -> tuple[list[_FusedOp], frozenset[int]]:
        key = (system, mids)
        found = self._cache.prefix.get(key)
        if found is None:
            measured: set[int] = set()
            found = (_fuse(self._items(mids, system, readout, measured)), frozenset(measured))
            self._cache.prefix[key] = found
        return found

    def _suffix_plan(
        self, system: tuple[cirq.Qid, ...], mids: tuple[int, ...], measured: frozenset[int], readout: _Readout
    ) -> list[_FusedOp]:
        key = (system, mids, measured)
        found = self._cache.suffix.get(key)
        if found is None:
            found = _fuse(self._items(mids, system, readout, set(measured)))
            self._cache.suffix[key] = found
        return found

    # ------------------------------------------------------------------ simulation

    def _state_bytes(self, n: int) -> int:
        return int(4**n * self._real.itemsize)

    def _prefix_states(self, plans: Sequence[list[_FusedOp]], n: int) -> np.ndarray:
        """States ``(4^n, len(plans))`` (one column per circuit) after each circuit's own prefix.

        Circuits whose prefixes have the same shape are run together with stacked matrices; qubits
        stay separate factors until a multi-qubit operation joins them, so single-qubit prefixes
        cost no more than building the final product state.
        """
        real = self._real
        out = np.empty((4**n, len(plans)), dtype=real)
        shapes: dict[tuple[tuple[int, ...], ...], list[int]] = defaultdict(list)
        for i, plan in enumerate(plans):
            shapes[tuple(op.qubits for op in plan)].append(i)
        for shape, members in shapes.items():
            g = len(members)
            # factors: qubits (axis order) and an array (g, 4, ..., 4), batch first for np.matmul
            factors: dict[int, tuple[list[int], np.ndarray]] = {
                q: ([q], np.broadcast_to(_ZERO.astype(real), (g, 4))) for q in range(n)
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
                full = _to_system_order(full.reshape((4,) * n + (g,)), full_qubits)
            if g == len(plans):
                return full
            out[:, members] = full
        return out

    def _transfer_matrix(self, ops: Sequence[_FusedOp], n: int, readout: _Readout, budget: int) -> np.ndarray:
        """``(4^n, 2^m)``: the measurement covectors propagated backwards through `ops`.

        Columns go in chunks of a power of two, about 4 chunk-sized arrays within `budget`.
        """
        total = 2 ** len(readout.qubits)
        cols = 1 << max(0, (budget // (4 * self._state_bytes(n))).bit_length() - 1)
        if cols >= total:
            x, order = _propagate(_observables(n, readout, self._real), ops, n, self._real, backward=True)
            return _to_system_order(x, order)
        out = np.empty((4**n, total), dtype=self._real)
        for lo in range(0, total, cols):
            x, order = _propagate(_observables(n, readout, self._real, lo, cols), ops, n, self._real, backward=True)
            out[:, lo : lo + cols] = _to_system_order(x, order)
        return out

    def _run_group(
        self, members: list[_Analysed], put: list[int], probs: list[np.ndarray | None], stats: dict[str, float]
    ) -> None:
        """Distributions of circuits with the same qubits and readout, sharing their common suffix."""
        system, readout = members[0].system, members[0].readout
        n, m = len(system), len(readout.qubits)
        state = self._state_bytes(n)
        if 4 * state > self._max_bytes:
            raise ConfigError(
                f"max_batch_bytes={self._max_bytes} cannot hold four {n}-qubit density matrices "
                f"({4 * state} bytes); raise it or use dtype=np.complex64."
            )
        t0 = time.perf_counter()
        length = _common_suffix([a.moments for a in members])
        prefixes = [self._prefix_plan(system, a.moments[: len(a.moments) - length], readout) for a in members]
        suffix = members[0].moments[len(members[0].moments) - length :]
        by_measured: dict[frozenset[int], list[int]] = defaultdict(list)
        for j, (_, measured) in enumerate(prefixes):
            by_measured[measured].append(j)
        stats["seconds_prepare"] += time.perf_counter() - t0
        for measured, js in by_measured.items():
            t0 = time.perf_counter()
            ops = self._suffix_plan(system, suffix, measured, readout)
            stats["fused_ops_total"] += sum(len(ops) + len(prefixes[j][0]) for j in js)
            key = (system, suffix, measured, readout)
            transfer = self._cache.transfer.get(key)
            w_bytes = 2**m * state
            if transfer is None and ops and 2 * w_bytes <= self._max_bytes:
                seen = self._cache.seen.get(key, 0) + len(js)
                self._cache.seen[key] = seen
                if seen >= 2**m:  # ski rental: the transfer matrix costs about 2^m forward runs
                    t1 = time.perf_counter()
                    transfer = self._transfer_matrix(ops, n, readout, self._max_bytes - w_bytes)
                    self._cache.transfer = {key: transfer}  # keep one
                    stats["seconds_transfer"] += time.perf_counter() - t1
            stats["seconds_prepare"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            # at most about 4 arrays of a chunk live at once: input, transposed copy, product, spare
            if transfer is not None:
                stats["transfer_groups"] += 1
                chunk = max(1, (self._max_bytes - w_bytes) // (4 * state))
            else:
                stats["forward_groups"] += 1
                chunk = max(1, self._max_bytes // (4 * state))
            for lo in range(0, len(js), chunk):
                part = js[lo : lo + chunk]
                x = self._prefix_states([prefixes[j][0] for j in part], n)
                if transfer is not None:
                    p_raw = (transfer.T @ x).T
                else:
                    y, order = _propagate(x, ops, n, self._real, backward=False)
                    p_raw = _readout_forward(y, order, readout)
                for j, row in zip(part, _finish(p_raw, readout), strict=True):
                    probs[put[j]] = row
            stats["seconds_simulate"] += time.perf_counter() - t0

    def _distributions(self, circuits: Sequence[Any]) -> list[tuple[np.ndarray, _Readout]]:
        """Every circuit's distribution (float64, ``2^m``) and readout, computed group by group."""
        cache = self._cache
        if max(len(cache.moments), len(cache.prefix), len(cache.ptms) // 8) > _CACHE_LIMIT:
            self._cache = _Caches()
        stats: dict[str, float] = defaultdict(float)
        t0 = time.perf_counter()
        local: dict[int, tuple[cirq.Moment, int]] = {}
        analysed = [self._analyse(c, local) for c in circuits]
        distinct: dict[tuple[Any, ...], int] = {}
        unique: list[_Analysed] = []
        which = []
        for a in analysed:
            key = (a.system, a.moments)
            if key not in distinct:
                distinct[key] = len(unique)
                unique.append(a)
            which.append(distinct[key])
        groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for i, a in enumerate(unique):
            groups[(a.system, a.readout)].append(i)
        stats["seconds_prepare"] += time.perf_counter() - t0
        probs: list[np.ndarray | None] = [None] * len(unique)
        for idx in groups.values():
            for part in _suffix_clusters([unique[i].moments for i in idx]):
                self._run_group([unique[idx[i]] for i in part], [idx[i] for i in part], probs, stats)
        stats["circuits"] = len(circuits)
        stats["distinct"] = len(unique)
        stats["layouts"] = len(groups)
        stats["fused_ops_mean"] = stats.pop("fused_ops_total", 0.0) / max(1, len(unique))
        self.last_stats = dict(stats)
        out = []
        for w, a in zip(which, analysed, strict=True):
            p = probs[w]
            assert p is not None
            out.append((p, a.readout))
        return out
