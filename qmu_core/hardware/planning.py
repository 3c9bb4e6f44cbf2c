"""The emulator's planning: circuits analysed, noise applied once per moment, plans fused and run.

`ExactDistributions` computes every circuit's exact distribution over its measured bits under a
noise model (see `qmu_core.hardware.emulator` for the method); the arithmetic is in
`qmu_core.hardware.transfer`, and `qmu_core.hardware.emulator.DensityMatrixEmulator` is the
`cirq.Sampler` that draws shots from these distributions. Kept apart as Cirq keeps its
``density_matrix_utils`` apart from the simulator. Cirq and NumPy only.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cirq
import numpy as np

from qmu_core.errors import ConfigError
from qmu_core.hardware.transfer import (
    FusedOp,
    Readout,
    common_suffix,
    finish,
    fuse,
    prefix_states,
    propagate,
    ptm_from_kraus,
    readout_forward,
    reorder,
    suffix_clusters,
    transfer_matrix,
)

__all__ = ["MAX_OP_QUBITS", "MAX_QUBITS", "ExactDistributions"]

MAX_QUBITS = 12
"""Most qubits per circuit: one density matrix of 12 qubits is 4^12 real numbers (64 MiB in float32)."""

MAX_OP_QUBITS = 4
"""Most qubits of one (noisy) operation: its transfer matrix is 4^k x 4^k."""

_PAD_TAG = "qmu_emulator_idle"
_CACHE_LIMIT = 10_000  # distinct moments (or prefixes) kept between calls before every cache is dropped


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
    readout: Readout


@dataclass(frozen=True)
class _Step:
    """One noisy operation of a moment on system positions; ``ptm=None`` marks a measurement."""

    qubits: tuple[int, ...]
    ptm: np.ndarray | None
    measurement: tuple[str, tuple[cirq.Qid, ...], tuple[bool, ...]] | None = None


def _measurement_signature(op: cirq.Operation) -> tuple[str, tuple[cirq.Qid, ...], tuple[bool, ...]]:
    return cirq.measurement_key_name(op), tuple(op.qubits), tuple(op.gate.full_invert_mask())


@dataclass
class _Caches:
    moments: list[cirq.Moment] = field(default_factory=list)
    moment_ids: dict[cirq.Moment, int] = field(default_factory=dict)
    info: dict[int, _MomentInfo] = field(default_factory=dict)
    steps: dict[tuple[int, tuple[cirq.Qid, ...]], tuple[_Step, ...]] = field(default_factory=dict)
    ptms: dict[Any, np.ndarray] = field(default_factory=dict)
    prefix: dict[tuple[Any, ...], tuple[list[FusedOp], frozenset[int]]] = field(default_factory=dict)
    suffix: dict[tuple[Any, ...], list[FusedOp]] = field(default_factory=dict)
    seen: dict[tuple[Any, ...], int] = field(default_factory=dict)
    transfer: dict[tuple[Any, ...], np.ndarray] = field(default_factory=dict)


class ExactDistributions:
    """Exact noisy distributions of batches of circuits, with caches kept between calls.

    Args:
        noise: The noise model (``cirq.NO_NOISE`` for none).
        real: ``float32`` or ``float64``: the precision of the arithmetic.
        max_bytes: Memory budget of the working arrays of one call (see `DensityMatrixEmulator`).

    Attributes:
        last_stats: Figures of the last call (see `DensityMatrixEmulator.last_stats`).
    """

    def __init__(self, noise: cirq.NoiseModel, real: np.dtype, max_bytes: int) -> None:
        self._noise = noise
        self._real = real
        self._max_bytes = max_bytes
        self._cache = _Caches()
        self.last_stats: dict[str, float] = {}

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
                        "instead (e.g. qmu_core.hardware.noise.noise_model)"
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
        readout = Readout(
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
        ptm = ptm_from_kraus(kraus, k)
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
            steps.append(_Step(tuple(order), reorder(self._op_ptm(op), where, order)))
        result = tuple(steps)
        self._cache.steps[key] = result
        return result

    def _items(
        self, mids: Sequence[int], system: tuple[cirq.Qid, ...], readout: Readout, measured: set[int]
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
        self, system: tuple[cirq.Qid, ...], mids: tuple[int, ...], readout: Readout
    ) -> tuple[list[FusedOp], frozenset[int]]:
        key = (system, mids)
        found = self._cache.prefix.get(key)
        if found is None:
            measured: set[int] = set()
            found = (fuse(self._items(mids, system, readout, measured)), frozenset(measured))
            self._cache.prefix[key] = found
        return found

    def _suffix_plan(
        self, system: tuple[cirq.Qid, ...], mids: tuple[int, ...], measured: frozenset[int], readout: Readout
    ) -> list[FusedOp]:
        key = (system, mids, measured)
        found = self._cache.suffix.get(key)
        if found is None:
            found = fuse(self._items(mids, system, readout, set(measured)))
            self._cache.suffix[key] = found
        return found

    # ------------------------------------------------------------------ simulation

    def _state_bytes(self, n: int) -> int:
        return int(4**n * self._real.itemsize)

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
        length = common_suffix([a.moments for a in members])
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
                    transfer = transfer_matrix(ops, n, readout, self._max_bytes - w_bytes, self._real)
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
                x = prefix_states([prefixes[j][0] for j in part], n, self._real)
                if transfer is not None:
                    p_raw = (transfer.T @ x).T
                else:
                    y, order = propagate(x, ops, n, self._real, backward=False)
                    p_raw = readout_forward(y, order, readout)
                for j, row in zip(part, finish(p_raw, readout), strict=True):
                    probs[put[j]] = row
            stats["seconds_simulate"] += time.perf_counter() - t0

    def distributions(self, circuits: Sequence[Any]) -> list[tuple[np.ndarray, Readout]]:
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
            for part in suffix_clusters([unique[i].moments for i in idx]):
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
