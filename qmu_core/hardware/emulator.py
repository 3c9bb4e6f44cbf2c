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
   recent operation touching its qubits while the union has at most ``transfer.FUSE_QUBITS`` qubits: an
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

The modules: `qmu_core.hardware.transfer` holds the arithmetic (transfer matrices, fusion,
propagation), `qmu_core.hardware.planning` the analysis, the noise per moment and the plans
(`ExactDistributions`), and this module the `cirq.Sampler` that draws the shots.

Limits: at most ``planning.MAX_QUBITS`` (12) qubits per circuit (all of them qubits, not qudits),
operations on at most 4 qubits, concrete (resolved) circuits whose measurements are all terminal
`cirq.MeasurementGate` s (one or more keys, each key once, no confusion maps), no classically
controlled operations.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import cirq
import numpy as np

from qmu_core.errors import ConfigError
from qmu_core.hardware.planning import ExactDistributions
from qmu_core.hardware.transfer import Readout

__all__ = ["DEFAULT_MAX_BATCH_BYTES", "DensityMatrixEmulator"]

DEFAULT_MAX_BATCH_BYTES = 512 * 2**20
"""Default memory budget of the working arrays (states, transfer matrix) of one call."""


class DensityMatrixEmulator(cirq.Sampler):
    """A `cirq.Sampler` that samples from exact noisy measurement distributions (see the module doc).

    Args:
        noise: The noise model (or anything ``cirq.NoiseModel.from_noise_model_like`` accepts, e.g.
            a channel applied after every moment); None for noiseless circuits. For Google's
            processors use `qmu_core.hardware.noise.noise_model`.
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
                    "qmu_core.hardware.noise.noise_model(processor('rainbow'))), a single-qubit channel such as "
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
        self._exact = ExactDistributions(self._noise, self._real, self._max_bytes)

    @property
    def noise(self) -> cirq.NoiseModel:
        """The noise model applied to every circuit (``cirq.NO_NOISE`` for none)."""
        return self._noise

    @property
    def last_stats(self) -> dict[str, float]:
        """Figures of the last call (see the class doc)."""
        return self._exact.last_stats

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
        found = self._exact.distributions(items)
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
        """`run_sweep`, called synchronously (the emulation is local)."""
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
        dists = self._exact.distributions(flat) if flat else []
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
        """`run_batch`, called synchronously (the emulation is local)."""
        return self.run_batch(programs, params_list, repetitions)

    # ------------------------------------------------------------------ sampling

    def _sample(self, p: np.ndarray, readout: Readout, repetitions: int, resolver: cirq.ParamResolver) -> cirq.Result:
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
