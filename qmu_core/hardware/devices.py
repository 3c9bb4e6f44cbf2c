"""Google processors offline: a validated `Processor` object with its device, gate set and calibration.

Three processors are known (`PROCESSORS`, declared with the ``hardware`` config section):
``"rainbow"`` and ``"weber"`` (Sycamore-generation, 2021 templates and median calibrations shipped
with cirq-google 1.5.0) and ``"willow_pink"``
(a Willow-generation device, 2024-08-16, whose specification and median calibration ship only
with cirq-google >= 1.6; QMU carries copies of the two upstream files in
``qmu_core/hardware/data/``, see the README there for source, version and licence). Everything
here is TensorFlow-free: Cirq, cirq-google and NumPy only.

`processor` checks a name once and hands back the one `Processor` of that name; everything
downstream (`qmu_core.hardware.noise`, `layout`, `prepare`, `samplers`) takes the object, never a
name to check again. Its parts are computed when first asked for and kept:

Devices and data
    * `Processor.specification`: the processor's ``DeviceSpecification`` proto. For willow_pink
      the text is adapted in memory while cirq-google's proto lacks the ``reset`` gate message
      (1.5.0 does): the ``reset`` entry is dropped before parsing and its duration (160 ns)
      becomes the reset time of the noise model. The file on disk stays byte-identical.
    * `Processor.device`: the ``cirq_google.GridDevice`` built from that specification.
    * `Processor.calibration`: the processor's median ``cirq_google.Calibration``
      (``cirq_google.engine.load_median_device_calibration`` for rainbow/weber, the bundled JSON
      for willow_pink, stamped 1723795877630 ms as cirq-google 1.6 does).

Compilation
    `Processor.gateset` is the ``cirq.CompilationTargetGateset`` to compile for. It has to be a
    two-qubit gate the device accepts *and* whose errors the calibration reports, or the noise
    model would see a gate it has no two-qubit error for:

    * rainbow, weber: ``cirq.SqrtIswapTargetGateset()``. Their 2021 calibrations report XEB
      errors for √iSWAP and Sycamore only (no CZ metric), and cirq-google turns the
      ``two_qubit_parallel_sqrt_iswap_gate_*`` metrics into errors of ``cirq.ISwapPowGate``.
    * willow_pink: ``cirq.CZTargetGateset()``. Its specification's only two-qubit gate is
      ``cz`` (42 ns) and its calibration reports only ``two_qubit_parallel_cz_gate_*`` metrics
      (Pauli, entangler theta/phi errors for all 182 couplers), which become errors of
      ``cirq.CZPowGate``; √iSWAP does not even validate on that device.

Calibrated properties
    `Processor.noise_properties`: ``cirq_google.noise_properties_from_calibration`` of the median
    calibration: T1, Tphi, single-qubit Pauli errors from RB, two-qubit Pauli and entangler
    (PhasedFSim theta/phi) errors from XEB, and readout errors p00/p11. Gate times: rainbow/weber
    use cirq-google's defaults (``DEFAULT_GATE_NS``, as cirq-google does for them); willow_pink
    uses the durations of its specification (CZ 42 ns, PhasedXZ 25 ns, physical Z 22 ns,
    measurement 600 ns, reset 160 ns). No Floquet Z-phase (zeta, gamma) data is used, which is
    what cirq-google 1.5.0's noisy virtual machine does. `Processor.circuit_duration_ns` times a
    compiled circuit as the thermal noise of `qmu_core.hardware.noise.noise_model` counts it.

Errors are `qmu_core.errors.ConfigError` saying what was asked, why it failed and how to fix it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import cirq
import cirq_google

from qmu_core.config import PROCESSORS
from qmu_core.errors import ConfigError

__all__ = ["PROCESSORS", "Processor", "processor"]

_BUNDLED_SPEC = "willow_pink_d7v1-2024_08_16_device_spec_for_grid_device.proto.txt"
_BUNDLED_CALIBRATION = "willow_pink_d7v1-2024_08_16_calibration.json"
_BUNDLED_TIMESTAMP_MS = 1723795877630  # 2024-08-16 08:11:17.630 UTC, the stamp cirq-google 1.6 gives this file

# A `valid_gates { [gate_duration_picos: N] reset {} }` entry of a specification in text format.
_RESET_ENTRY = re.compile(r"valid_gates\s*\{\s*(?:gate_duration_picos:\s*(\d+)\s*)?reset\s*\{\s*\}\s*\}\s*")


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


@dataclass(frozen=True)
class Processor:
    """One Google processor QMU holds offline; build it with `processor` (the name is checked once).

    Attributes:
        name: One of `PROCESSORS`.

    Raises:
        ConfigError: For a name outside `PROCESSORS`.
    """

    name: str

    def __post_init__(self) -> None:
        if self.name not in PROCESSORS:
            raise ConfigError(
                f"Unknown hardware target {self.name!r}: QMU holds the device spec and calibration of "
                f"{list(PROCESSORS)} only, so this is an unknown processor. Pass one of these names."
            )

    def specification(self) -> Any:
        """The processor's ``cirq_google.api.v2.device_pb2.DeviceSpecification`` (a fresh proto each call).

        Raises:
            ConfigError: For a bundled willow_pink file that cannot be parsed.
        """
        from cirq_google.api import v2
        from cirq_google.engine import virtual_engine_factory

        if self.name != "willow_pink":
            return virtual_engine_factory.create_device_spec_from_processor_id(self.name)
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

    @functools.cached_property
    def device(self) -> cirq_google.GridDevice:
        """The processor's ``cirq_google.GridDevice`` (qubits, couplers, gates and their durations)."""
        return cirq_google.GridDevice.from_proto(self.specification())

    @functools.cached_property
    def calibration(self) -> cirq_google.Calibration:
        """The processor's median ``cirq_google.Calibration`` (shared object: do not modify it)."""
        if self.name != "willow_pink":
            return cirq_google.engine.load_median_device_calibration(self.name)
        cal = cirq.read_json(json_text=_data_text(_BUNDLED_CALIBRATION))
        if not isinstance(cal, cirq_google.Calibration):
            raise ConfigError(
                f"median_calibration('willow_pink'): {_BUNDLED_CALIBRATION} holds a {type(cal).__name__}, not a "
                "cirq_google.Calibration. Restore the file byte for byte from the cirq-google 1.6.1 wheel."
            )
        cal.timestamp = _BUNDLED_TIMESTAMP_MS
        return cal

    @functools.cached_property
    def gateset(self) -> cirq.CompilationTargetGateset:
        """The gate set to compile for: √iSWAP for rainbow and weber, CZ for willow_pink.

        Each is the device's two-qubit gate whose errors the median calibration reports (see the
        module docstring), so the calibrated noise model knows the error of every two-qubit gate of
        a compiled circuit.
        """
        if self.name == "willow_pink":
            return cirq.CZTargetGateset()
        return cirq.SqrtIswapTargetGateset()

    def compile(self, circuit: cirq.Circuit) -> cirq.Circuit:
        """`circuit` compiled to `gateset` (``cirq.optimize_for_target_gateset``)."""
        return cirq.optimize_for_target_gateset(circuit, gateset=self.gateset)

    @functools.cached_property
    def two_qubit_gate_type(self) -> type:
        """The type of the two-qubit gate `gateset` compiles a CNOT to (``cirq.CZPowGate``, ``cirq.ISwapPowGate``)."""
        a, b = cirq.LineQubit.range(2)
        compiled = self.compile(cirq.Circuit(cirq.CNOT(a, b)))
        found = {type(op.gate) for op in compiled.all_operations() if cirq.num_qubits(op) == 2}
        if len(found) != 1:  # pragma: no cover - both gate sets compile a CNOT to one native gate type
            raise ConfigError(f"{self.name}: a CNOT compiles to two-qubit gates {sorted(map(str, found))}, not one.")
        return found.pop()

    @functools.cached_property
    def gate_times_ns(self) -> dict[type, float] | None:
        """Gate durations of the noise model; None means cirq-google's ``DEFAULT_GATE_NS`` (rainbow, weber).

        willow_pink: every gate type of the device's gate families with the family's duration. A type
        under several families (virtual and physical Z) keeps its longest duration, the one of its
        physical form; virtual Z gates get no noise anyway. Identity (idling is the duration of the
        moment's other gates) and wait gates (their duration is their argument) are left out. The
        reset time comes from the specification's dropped ``reset`` entry.
        """
        if self.name != "willow_pink":
            return None
        times: dict[type, float] = {}
        for family, duration in self.device.metadata.gate_durations.items():
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

    @functools.cached_property
    def noise_properties(self) -> cirq_google.GoogleNoiseProperties:
        """``cirq_google.GoogleNoiseProperties`` of the processor's median calibration."""
        return cirq_google.noise_properties_from_calibration(self.calibration, gate_times_ns=self.gate_times_ns)

    def circuit_duration_ns(self, circuit: cirq.AbstractCircuit) -> float:
        """Duration (ns) of a compiled circuit on the processor, as the calibrated thermal noise counts it.

        Each moment lasts as long as its longest gate, by the gate times of `noise_properties`
        (``gate_times_ns``; a gate type matches its first listed supertype, as in
        ``cirq.devices.ThermalNoiseModel``); gates without a time (identities, unknown types) last 0.
        Measurements count with their duration, so pass a circuit without its read-out for the time
        the qubits decohere before being read.
        """
        times = self.noise_properties.gate_times_ns
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


@functools.cache
def processor(name: str) -> Processor:
    """The one `Processor` of `name` in this process (its device, calibration and noise are kept).

    Raises:
        ConfigError: For a name outside `PROCESSORS`.
    """
    return Processor(name)
