"""Google processors offline: devices, compilation gate sets, calibrated noise and virtual samplers.

Three processors are known (`PROCESSORS`): ``"rainbow"`` and ``"weber"`` (Sycamore-generation,
2021 templates and median calibrations shipped with cirq-google 1.5.0) and ``"willow_pink"``
(a Willow-generation device, 2024-08-16, whose specification and median calibration ship only
with cirq-google >= 1.6; QMU carries copies of the two upstream files in
``qmu_core/hardware/data/``, see the README there for source, version and licence). Everything
here is TensorFlow-free: Cirq, cirq-google, qsimcirq and NumPy only.

Devices and data
    * `device_specification`: the processor's ``DeviceSpecification`` proto. For willow_pink the
      text is adapted in memory while cirq-google's proto lacks the ``reset`` gate message
      (1.5.0 does): the ``reset`` entry is dropped before parsing and its duration (160 ns)
      becomes the reset time of the noise model. The file on disk stays byte-identical.
    * `device`: the ``cirq_google.GridDevice`` built from that specification (cached).
    * `median_calibration`: the processor's median ``cirq_google.Calibration``
      (``cirq_google.engine.load_median_device_calibration`` for rainbow/weber, the bundled JSON
      for willow_pink, stamped 1723795877630 ms as cirq-google 1.6 does).

Compilation
    `gateset` is the ``cirq.CompilationTargetGateset`` to compile for a processor. It has to be
    a two-qubit gate the device accepts *and* whose errors the calibration reports, or the
    noise model would see a gate it has no two-qubit error for:

    * rainbow, weber: ``cirq.SqrtIswapTargetGateset()``. Their 2021 calibrations report XEB
      errors for √iSWAP and Sycamore only (no CZ metric), and cirq-google turns the
      ``two_qubit_parallel_sqrt_iswap_gate_*`` metrics into errors of ``cirq.ISwapPowGate``.
    * willow_pink: ``cirq.CZTargetGateset()``. Its specification's only two-qubit gate is
      ``cz`` (42 ns) and its calibration reports only ``two_qubit_parallel_cz_gate_*`` metrics
      (Pauli, entangler theta/phi errors for all 182 couplers), which become errors of
      ``cirq.CZPowGate``; √iSWAP does not even validate on that device.

Noise
    * `noise_properties`: ``cirq_google.noise_properties_from_calibration`` of the median
      calibration (cached): T1, Tphi, single-qubit Pauli errors from RB, two-qubit Pauli and
      entangler (PhasedFSim theta/phi) errors from XEB, and readout errors p00/p11. Gate times:
      rainbow/weber use cirq-google's defaults (``DEFAULT_GATE_NS``, as cirq-google does for
      them); willow_pink uses the durations of its specification (CZ 42 ns, PhasedXZ 25 ns,
      physical Z 22 ns, measurement 600 ns, reset 160 ns). No Floquet Z-phase (zeta, gamma)
      data is used, which is what cirq-google 1.5.0's noisy virtual machine does.
    * `noise_model`: ``cirq_google.NoiseModelFromGoogleNoiseProperties`` of those properties
      (cached): after every physical moment a thermal (T1/Tphi) channel for the moment's
      duration on every qubit, after each gate its depolarizing remainder and, for two-qubit
      gates, the coherent entangler error; a generalised amplitude-damping readout error
      before each measurement. Virtual Z gates stay noiseless.
    * `simple_noise_model`: a plain, processor-free noise model for noisy-qsim runs
      (`SimpleNoiseModel`, see there).

Choosing qubits
    * `circuit_duration_ns`: how long a compiled circuit runs, moment by moment as the thermal
      noise of `noise_model` counts it.
    * `ring_cost`: a first-order estimate of the total error of running the model's circuit on a
      ring of qubits (calibrated two-qubit, single-qubit and readout errors plus T1/Tphi decay
      over the circuit's duration); `qmu_core.hardware.prepare.best_ring` picks the ring with the
      lowest cost.

Samplers (both are ``cirq_google.ProcessorSampler`` of a ``SimulatedLocalProcessor`` inside a
``SimulatedLocalEngine``, backed by a seeded ``qsimcirq.QSimSimulator`` with ``cpu_threads``
set; each circuit is validated as Quantum Engine would before it runs: device qubits, couplers
and gates (``device.validate_circuit``), serialisability, moment and repetition limits, at
least one measurement, program size):

    * `virtual_sampler`: noiseless, like the processors of cirq-google's
      ``create_noiseless_virtual_engine_from_latest_templates`` (which run on ``cirq.Simulator``);
    * `noisy_qvm_sampler`: the noisy quantum virtual machine, like cirq-google's
      ``create_default_noisy_quantum_virtual_machine(name, simulator_class=qsimcirq.QSimSimulator)``
      with the noise of `noise_model` and the median calibration attached to the processor
      (cirq-google's own QVM checks the device only; this one adds the Engine checks above).

Errors are `qmu_core.errors.ConfigError` saying what was asked, why it failed and how to fix it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from collections.abc import Sequence
from importlib import resources
from numbers import Real
from typing import Any

import cirq
import cirq_google
import numpy as np
import qsimcirq

from qmu_core.errors import ConfigError

__all__ = [
    "PROCESSORS",
    "SimpleNoiseModel",
    "circuit_duration_ns",
    "device",
    "device_specification",
    "gateset",
    "median_calibration",
    "noise_model",
    "noise_properties",
    "noisy_qvm_sampler",
    "qsim_simulator",
    "ring_cost",
    "simple_noise_model",
    "virtual_sampler",
]

PROCESSORS: tuple[str, ...] = ("rainbow", "weber", "willow_pink")
"""Google processors this module can build devices, noise models and virtual samplers for."""

_BUNDLED_SPEC = "willow_pink_d7v1-2024_08_16_device_spec_for_grid_device.proto.txt"
_BUNDLED_CALIBRATION = "willow_pink_d7v1-2024_08_16_calibration.json"
_BUNDLED_TIMESTAMP_MS = 1723795877630  # 2024-08-16 08:11:17.630 UTC, the stamp cirq-google 1.6 gives this file

# A `valid_gates { [gate_duration_picos: N] reset {} }` entry of a specification in text format.
_RESET_ENTRY = re.compile(r"valid_gates\s*\{\s*(?:gate_duration_picos:\s*(\d+)\s*)?reset\s*\{\s*\}\s*\}\s*")


def _check(name: str, what: str) -> None:
    if name not in PROCESSORS:
        raise ConfigError(
            f"{what}({name!r}): unknown processor; this module has device data for {list(PROCESSORS)} only. "
            "Pass one of these names."
        )


# ---------------------------------------------------------------------------- devices and data


def _data_text(filename: str) -> str:
    path = resources.files("qmu_core.hardware") / "data" / filename
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"Loading willow_pink needs {filename} from qmu_core/hardware/data, but it cannot be read ({exc}); "
            "the package was installed without its data files. Reinstall QMU (pip install -e .) from a full "
            "checkout."
        ) from exc


def _proto_knows_reset() -> bool:
    from cirq_google.api import v2

    return "reset" in v2.device_pb2.GateSpecification.DESCRIPTOR.fields_by_name


@functools.cache
def _willow_spec() -> tuple[str, float | None]:
    """The willow_pink specification text this cirq-google can parse, and the dropped reset time (ns)."""
    text = _data_text(_BUNDLED_SPEC)
    if _proto_knows_reset():
        return text, None
    found = list(_RESET_ENTRY.finditer(text))
    if len(found) != 1 or found[0].group(1) is None:
        raise ConfigError(
            f"device_specification('willow_pink'): {_BUNDLED_SPEC} should hold one 'reset' gate entry with a "
            f"duration, which cirq-google {cirq_google.__version__} cannot parse and QMU drops; found "
            f"{len(found)}. Restore the file byte for byte from the cirq-google 1.6.1 wheel."
        )
    entry = found[0]
    return text[: entry.start()] + text[entry.end() :], int(entry.group(1)) / 1000.0


def device_specification(name: str) -> Any:
    """The processor's ``cirq_google.api.v2.device_pb2.DeviceSpecification`` (a fresh proto each call).

    Raises:
        ConfigError: For an unknown processor, or a bundled willow_pink file that cannot be parsed.
    """
    _check(name, "device_specification")
    from cirq_google.api import v2
    from cirq_google.engine import virtual_engine_factory

    if name != "willow_pink":
        return virtual_engine_factory.create_device_spec_from_processor_id(name)
    from google.protobuf import text_format  # type: ignore[import-untyped]  # ships no stubs

    text, _ = _willow_spec()
    spec = v2.device_pb2.DeviceSpecification()
    try:
        text_format.Parse(text, spec)
    except text_format.ParseError as exc:
        raise ConfigError(
            f"device_specification('willow_pink'): cirq-google {cirq_google.__version__} cannot parse "
            f"{_BUNDLED_SPEC} ({exc}). QMU adapts only the 'reset' entry; a newer file or an older cirq-google "
            "needs more. Use the file from cirq-google 1.6.1 with cirq-google 1.5.x or >= 1.6."
        ) from exc
    return spec


@functools.cache
def device(name: str) -> cirq_google.GridDevice:
    """The processor's ``cirq_google.GridDevice`` (qubits, couplers, gates and their durations); cached.

    Raises:
        ConfigError: For an unknown processor.
    """
    _check(name, "device")
    return cirq_google.GridDevice.from_proto(device_specification(name))


@functools.cache
def _calibration(name: str) -> Any:
    if name != "willow_pink":
        return cirq_google.engine.load_median_device_calibration(name)
    cal = cirq.read_json(json_text=_data_text(_BUNDLED_CALIBRATION))
    if not isinstance(cal, cirq_google.Calibration):
        raise ConfigError(
            f"median_calibration('willow_pink'): {_BUNDLED_CALIBRATION} holds a {type(cal).__name__}, not a "
            "cirq_google.Calibration. Restore the file byte for byte from the cirq-google 1.6.1 wheel."
        )
    cal.timestamp = _BUNDLED_TIMESTAMP_MS
    return cal


def median_calibration(name: str) -> cirq_google.Calibration:
    """The processor's median ``cirq_google.Calibration`` (shared, cached object: do not modify it).

    Raises:
        ConfigError: For an unknown processor.
    """
    _check(name, "median_calibration")
    return _calibration(name)


def _gate_times_ns(name: str) -> dict[type, float] | None:
    """Gate durations of the noise model; None means cirq-google's ``DEFAULT_GATE_NS`` (rainbow, weber).

    willow_pink: every gate type of the device's gate families with the family's duration. A type
    under several families (virtual and physical Z) keeps its longest duration, the one of its
    physical form; virtual Z gates get no noise anyway. Identity (idling is the duration of the
    moment's other gates) and wait gates (their duration is their argument) are left out. The
    reset time comes from the specification's dropped ``reset`` entry.
    """
    if name != "willow_pink":
        return None
    times: dict[type, float] = {}
    for family, duration in device(name).metadata.gate_durations.items():
        accepted = family.gates_to_accept if isinstance(family, cirq_google.FSimGateFamily) else [family.gate]
        for gate in accepted:
            gate_type = gate if isinstance(gate, type) else type(gate)
            times[gate_type] = max(times.get(gate_type, 0.0), float(duration.total_nanos()))
    for dropped in (cirq.IdentityGate, cirq.WaitGate):
        times.pop(dropped, None)
    _, reset_ns = _willow_spec()
    if reset_ns is not None:
        times[cirq.ResetChannel] = reset_ns
    return times


# ---------------------------------------------------------------------------- compilation


@functools.cache
def gateset(name: str) -> cirq.CompilationTargetGateset:
    """The gate set to compile for a processor: √iSWAP for rainbow and weber, CZ for willow_pink.

    Each is the device's two-qubit gate whose errors the median calibration reports (see the
    module docstring), so `noise_model` knows the error of every two-qubit gate of a compiled
    circuit. Compile with ``cirq.optimize_for_target_gateset(circuit, gateset=gateset(name))``.

    Raises:
        ConfigError: For an unknown processor.
    """
    _check(name, "gateset")
    if name == "willow_pink":
        return cirq.CZTargetGateset()
    return cirq.SqrtIswapTargetGateset()


# ---------------------------------------------------------------------------- calibrated noise


@functools.cache
def noise_properties(name: str) -> cirq_google.GoogleNoiseProperties:
    """``cirq_google.GoogleNoiseProperties`` of the processor's median calibration (cached).

    Raises:
        ConfigError: For an unknown processor.
    """
    _check(name, "noise_properties")
    return cirq_google.noise_properties_from_calibration(_calibration(name), gate_times_ns=_gate_times_ns(name))


@functools.cache
def noise_model(name: str) -> cirq.NoiseModel:
    """The processor's calibrated ``cirq.NoiseModel`` (``NoiseModelFromGoogleNoiseProperties``); cached.

    Raises:
        ConfigError: For an unknown processor.
    """
    _check(name, "noise_model")
    return cirq_google.NoiseModelFromGoogleNoiseProperties(noise_properties(name))


# ---------------------------------------------------------------------------- choosing qubits


@functools.cache
def _two_qubit_gate_type(name: str) -> type:
    """The type of the two-qubit gate `gateset` compiles a CNOT to (``cirq.CZPowGate``, ``cirq.ISwapPowGate``)."""
    a, b = cirq.LineQubit.range(2)
    compiled = cirq.optimize_for_target_gateset(cirq.Circuit(cirq.CNOT(a, b)), gateset=gateset(name))
    found = {type(op.gate) for op in compiled.all_operations() if cirq.num_qubits(op) == 2}
    if len(found) != 1:  # pragma: no cover - both gate sets compile a CNOT to one native gate type
        raise ConfigError(f"gateset({name!r}) compiles a CNOT to two-qubit gates {sorted(map(str, found))}, not one.")
    return found.pop()


def _op_error(errors: dict[Any, float], gate_type: type, *qubits: cirq.Qid) -> float:
    """A calibrated error of `gate_type` on `qubits` (either order for two qubits); inf if missing or invalid."""
    orders = [qubits, qubits[::-1]] if len(qubits) == 2 else [qubits]
    for order in orders:
        value = errors.get(cirq.OpIdentifier(gate_type, *order))
        if value is not None:
            value = float(value)
            return value if math.isfinite(value) and value >= 0 else math.inf
    return math.inf


def _entangler_error(props: cirq_google.GoogleNoiseProperties, gate_type: type, a: cirq.Qid, b: cirq.Qid) -> float:
    """Process infidelity ``1 - |tr U|^2 / 16`` of the coherent (PhasedFSim) error of a coupler's gate; 0 if none."""
    for order in ((a, b), (b, a)):
        gate = props.fsim_errors.get(cirq.OpIdentifier(gate_type, *order))
        if gate is not None:
            return float(1.0 - abs(np.trace(cirq.unitary(gate))) ** 2 / 16.0)
    return 0.0


def _decay_rate(time_ns: Any) -> float:
    """``1 / T`` (per ns) of a T1 or Tphi: 0 for an infinite time (no decay), inf if missing or not positive."""
    if time_ns is None:
        return math.inf
    value = float(time_ns)
    if math.isnan(value) or value <= 0:
        return math.inf
    return 0.0 if math.isinf(value) else 1.0 / value


def _count(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)) or value < 0:
        raise ConfigError(f"ring_cost: {what}={value!r}; pass a finite number >= 0.")
    return float(value)


def circuit_duration_ns(name: str, circuit: cirq.AbstractCircuit) -> float:
    """Duration (ns) of a compiled circuit on the processor, as `noise_model`'s thermal noise counts it.

    Each moment lasts as long as its longest gate, by the gate times of `noise_properties`
    (``gate_times_ns``; a gate type matches its first listed supertype, as in
    ``cirq.devices.ThermalNoiseModel``); gates without a time (identities, unknown types) last 0.
    Measurements count with their duration, so pass a circuit without its read-out for the time
    the qubits decohere before being read.

    Raises:
        ConfigError: For an unknown processor.
    """
    _check(name, "circuit_duration_ns")
    times = noise_properties(name).gate_times_ns
    total = 0.0
    for moment in circuit:
        longest = 0.0
        for op in moment:
            for gate_type, ns in times.items():
                if op.gate is not None and issubclass(type(op.gate), gate_type):
                    longest = max(longest, float(ns))
                    break
        total += longest
    return total


def ring_cost(
    name: str,
    ring: Sequence[cirq.Qid],
    *,
    two_qubit_gates_per_edge: float,
    duration_ns: float,
    single_qubit_gates_per_qubit: float = 0.0,
) -> float:
    """Estimated total error of running the model's circuit on `ring` (qubits in ring order); lower is better.

    With ``g2 = two_qubit_gates_per_edge``, ``g1 = single_qubit_gates_per_qubit`` and
    ``D = duration_ns``, from the processor's median calibration (`noise_properties`)::

        cost = sum over ring edges (ring[i], ring[(i + 1) % n]):  g2 * e2(edge)
             + sum over ring qubits q:  D / T1(q) + D / Tphi(q) + (e0(q) + e1(q)) / 2 + g1 * e1q(q)

    * ``e2``: the calibrated Pauli error of the processor's compiled two-qubit gate (the gate
      `gateset` compiles a CNOT to: CZ on willow_pink, √iSWAP on rainbow and weber) on that
      coupler, or the process infidelity ``1 - |tr U|^2 / 16`` of the coupler's coherent
      entangler (PhasedFSim) error when that is larger: `noise_model` splits the Pauli error
      into thermal, entangler and depolarizing parts and clips a negative depolarizing part at 0.
      For ``n = 2`` the one coupler appears twice (the model's two CNOTs on it).
    * ``T1``, ``Tphi``: per-qubit times in ns; an infinite time adds 0. ``D/T1 + D/Tphi`` is the
      first-order probability of a relaxation or dephasing event during the circuit, the thermal
      noise `noise_model` adds after every moment (it also counts the calibrated gate errors'
      own small thermal part once more: under 1% of them).
    * ``e0``, ``e1``: the readout errors (0 read as 1, 1 read as 0); their mean is the error of
      an unbiased bit.
    * ``e1q``: the calibrated Pauli error of ``cirq.PhasedXZGate`` (the compiled single-qubit
      gate) on the qubit; left out when ``g1 = 0``.

    All terms are first-order probabilities of an error, so the cost is the expected number of
    errors in one run of the circuit (it can exceed 1; only its ranking matters). A coupler or
    qubit the calibration has no (valid) number for makes the cost ``math.inf``: such a ring is
    never preferred to one with full data, rather than treated as free. Two qubits that are not
    coupled have no two-qubit error, so a ring that is not a cycle of the device costs inf too.

    Raises:
        ConfigError: For an unknown processor, fewer than 2 or repeated qubits, or a negative or
            non-finite gate count or duration.
    """
    _check(name, "ring_cost")
    g2 = _count(two_qubit_gates_per_edge, "two_qubit_gates_per_edge")
    g1 = _count(single_qubit_gates_per_qubit, "single_qubit_gates_per_qubit")
    duration = _count(duration_ns, "duration_ns")
    qubits = list(ring)
    if len(qubits) < 2 or len(set(qubits)) != len(qubits):
        raise ConfigError(f"ring_cost({name!r}): a ring needs at least 2 distinct qubits, got {qubits}.")
    props = noise_properties(name)
    two_qubit = _two_qubit_gate_type(name)
    cost = 0.0
    n = len(qubits)
    for i in range(n):
        a, b = qubits[i], qubits[(i + 1) % n]
        pauli = _op_error(props.gate_pauli_errors, two_qubit, a, b)
        if math.isinf(pauli):
            return math.inf
        cost += g2 * max(pauli, _entangler_error(props, two_qubit, a, b))
    for q in qubits:
        rate = _decay_rate(props.t1_ns.get(q)) + _decay_rate(props.tphi_ns.get(q))
        readout = props.readout_errors.get(q)
        values = [float(e) for e in readout] if readout is not None else []
        if math.isinf(rate) or len(values) != 2 or not all(math.isfinite(e) and 0 <= e <= 1 for e in values):
            return math.inf
        cost += duration * rate + sum(values) / 2
        if g1 > 0:
            cost += g1 * _op_error(props.gate_pauli_errors, cirq.PhasedXZGate, q)
    return cost


# ---------------------------------------------------------------------------- virtual samplers


def qsim_simulator(seed: int, cpu_threads: int | None, noise: cirq.NoiseModel | None, what: str) -> Any:
    """A seeded `qsimcirq.QSimSimulator` with `cpu_threads` threads (None: every core) and `noise`;
    `what` names the caller in errors. The one place QMU builds a qsim simulator."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConfigError(f"{what}: seed={seed!r} is not an integer; pass an int so runs repeat exactly.")
    threads = cpu_threads if cpu_threads is not None else len(os.sched_getaffinity(0))
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1:
        raise ConfigError(f"{what}: cpu_threads={cpu_threads!r}; qsim needs a whole number of threads >= 1.")
    options = qsimcirq.QSimOptions(cpu_threads=int(threads))
    return qsimcirq.QSimSimulator(qsim_options=options, seed=int(seed), noise=noise)


def _processor_sampler(name: str, simulator: Any, calibration: Any | None) -> Any:
    from cirq_google.engine import engine_validator
    from cirq_google.engine.simulated_local_engine import SimulatedLocalEngine
    from cirq_google.engine.simulated_local_processor import SimulatedLocalProcessor

    calibrations = {} if calibration is None else {calibration.timestamp // 1000: calibration}
    processor = SimulatedLocalProcessor(
        processor_id=name,
        sampler=simulator,
        device=device(name),
        validator=engine_validator.create_engine_validator(),
        program_validator=engine_validator.create_program_validator(),
        calibrations=calibrations,
        device_specification=device_specification(name),
    )
    SimulatedLocalEngine([processor])  # sets processor.engine(), as the virtual engine factories do
    return processor.get_sampler()


def virtual_sampler(name: str, *, seed: int, cpu_threads: int | None = None) -> cirq.Sampler:
    """The noiseless virtual processor's sampler, backed by a seeded multi-threaded qsim.

    Like a processor of cirq-google's noiseless virtual engine: every circuit is validated as
    Quantum Engine would (device qubits, couplers and gates, serialisation, size limits, at least
    one measurement) and then simulated without noise. No calibration is attached (the processor
    is perfect); `median_calibration` has the real numbers.

    Args:
        name: One of `PROCESSORS`.
        seed: Seed of qsim's measurement sampling (same seed and same calls: same bits).
        cpu_threads: qsim threads; default every core this process may use.

    Returns:
        A ``cirq_google.ProcessorSampler`` (a ``cirq.Sampler``).

    Raises:
        ConfigError: For an unknown processor, a non-integer seed or fewer than one thread.
    """
    _check(name, "virtual_sampler")
    return _processor_sampler(name, qsim_simulator(seed, cpu_threads, None, f"virtual_sampler({name!r})"), None)


def noisy_qvm_sampler(name: str, *, seed: int, cpu_threads: int | None = None) -> cirq.Sampler:
    """The noisy quantum virtual machine of a processor: validated like Engine, noise of `noise_model`.

    A seeded qsim with the processor's calibrated noise (qsim samples noise by trajectories: each
    repetition draws one), the device, the Engine's validators and the median calibration
    attached (``processor.get_current_calibration()``).

    Args:
        name: One of `PROCESSORS`.
        seed: Seed of qsim's noise and measurement sampling (same seed and same calls: same bits).
        cpu_threads: qsim threads; default every core this process may use.

    Returns:
        A ``cirq_google.ProcessorSampler`` (a ``cirq.Sampler``).

    Raises:
        ConfigError: For an unknown processor, a non-integer seed or fewer than one thread.
    """
    _check(name, "noisy_qvm_sampler")
    simulator = qsim_simulator(seed, cpu_threads, noise_model(name), f"noisy_qvm_sampler({name!r})")
    return _processor_sampler(name, simulator, _calibration(name))


# ---------------------------------------------------------------------------- simple noise


@dataclasses.dataclass(frozen=True)
class SimpleNoiseModel(cirq.NoiseModel):
    """Uniform, processor-free noise: depolarizing per gate, amplitude damping per moment, readout flips.

    Each moment becomes, in order:

    1. ``cirq.bit_flip(readout_error)`` on every qubit a measurement of the moment reads (the
       readout error, before the measurement);
    2. the moment itself;
    3. ``cirq.depolarize(depolarizing, n_qubits=k)`` on the k qubits of every non-measurement
       operation: a single-qubit gate gets the single-qubit channel (X, Y or Z each with
       probability p/3), a two-qubit gate the *two-qubit* depolarizing channel (each of the 15
       non-identity two-qubit Paulis with probability p/15), so p is the total error
       probability of any gate, as an RB/XEB error per gate would be quoted. Measurements are
       not depolarized;
    4. ``cirq.amplitude_damp(amplitude_damping)`` on every qubit of the circuit, busy or idle
       (energy relaxation per moment; after a measurement it only affects later operations).

    A channel with rate 0 is left out. Works with ``qsimcirq.QSimSimulator(noise=...)`` (by
    trajectories) and ``cirq.DensityMatrixSimulator(noise=...)`` (exactly). Build it with
    `simple_noise_model`, which checks the rates.
    """

    depolarizing: float
    amplitude_damping: float
    readout_error: float

    def noisy_moment(self, moment: cirq.Moment, system_qubits: Any) -> cirq.OP_TREE:
        """The moment with the readout flips before it and gate and damping noise after it."""
        measured = [q for op in moment.operations if cirq.is_measurement(op) for q in op.qubits]
        gates = [op for op in moment.operations if op.qubits and not cirq.is_measurement(op)]
        out: list[cirq.Moment] = []
        if self.readout_error > 0 and measured:
            out.append(cirq.Moment(cirq.bit_flip(self.readout_error).on(q) for q in measured))
        out.append(moment)
        if self.depolarizing > 0 and gates:
            out.append(
                cirq.Moment(cirq.depolarize(self.depolarizing, n_qubits=len(op.qubits)).on(*op.qubits) for op in gates)
            )
        if self.amplitude_damping > 0 and system_qubits:
            out.append(cirq.Moment(cirq.amplitude_damp(self.amplitude_damping).on(q) for q in system_qubits))
        return out


def _rate(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ConfigError(f"simple_noise_model: {name}={value!r} is not a finite number; pass a rate in [0, 1).")
    rate = float(value)
    if not 0.0 <= rate < 1.0:
        raise ConfigError(
            f"simple_noise_model: {name}={rate} is outside [0, 1); it is a probability per gate, moment or "
            "read-out, and 1 would erase every signal. Pass a rate in [0, 1) (0 turns that channel off)."
        )
    return rate


def simple_noise_model(depolarizing: float, amplitude_damping: float, readout_error: float) -> SimpleNoiseModel | None:
    """A `SimpleNoiseModel` with the given rates, or None when all three are 0 (noiseless).

    Args:
        depolarizing: Total Pauli-error probability p after every gate (single- and two-qubit).
        amplitude_damping: Damping probability gamma of every qubit after every moment.
        readout_error: Probability that a measured bit flips.

    Raises:
        ConfigError: If a rate is not a finite number in [0, 1).
    """
    rates = (
        _rate(depolarizing, "depolarizing"),
        _rate(amplitude_damping, "amplitude_damping"),
        _rate(readout_error, "readout_error"),
    )
    if not any(rates):
        return None
    return SimpleNoiseModel(*rates)
