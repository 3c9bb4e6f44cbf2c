"""Per-record circuits of a trained basic QNN or model plug-in, placed and compiled for a Google device.

* `resolved_circuits`: the model circuit (`qmu_core.qnn.circuits.build_circuit`) with the trained
  ``theta`` and every record's input-symbol values bound: concrete circuits on
  ``cirq.LineQubit(0..n-1)``, without measurements (simulate them for exact ⟨Z⟩);
* `prepare`: for ``target=None`` the circuits stay on LineQubits (simulators); for a Google
  `qmu_core.hardware.devices.Processor` logical qubit ``i`` goes to qubit ``i`` of a ring
  (`qmu_core.hardware.layout.best_ring` by default: the ring with the lowest calibrated error),
  so the model's CNOT ring ``0->1->...->n-1->0`` only couples neighbours (angle encoding), then
  the circuit is compiled to the processor's calibrated two-qubit gate (√iSWAP on rainbow and
  weber, CZ on willow_pink) and validated against the device. Every prepared circuit ends with
  one measurement ``cirq.measure(*qubits, key="z")`` in *logical* order, so bit ``i`` of a sample
  is logical qubit ``i`` whatever physical qubit carries it;
* `prepare_model`: the same for a model and its records, compiling the fixed parts once (fast);

Amplitude encoding's state preparation couples non-neighbouring qubits (CNOTs from qubit
``k - 1 - b`` to ``k``), which a ring cannot host: such circuits are placed and routed by
``cirq.RouteCQC`` on the whole device graph (SWAPs inserted, so far more two-qubit gates: 8 qubits,
2 layers measured 270 -> 664 √iSWAPs on rainbow), and the read-out measures each logical qubit
where routing left it.

A model plug-in's circuit (`qmu_core.plugins`) is measured the same way: its qubits renumbered to
``cirq.LineQubit(0..n-1)`` and its read-out's basis change appended (`measured_circuit`), every
record compiled alone (its two-qubit gates need not follow a ring: `prepare` routes them).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cirq
import numpy as np
import pandas as pd

from qmu_core import frames
from qmu_core.config import ModelConfig
from qmu_core.errors import ArtifactError, ConfigError
from qmu_core.hardware.devices import Processor
from qmu_core.hardware.layout import best_ring, two_qubit_count
from qmu_core.qnn import circuits
from qmu_core.qnn.cirq_model import MeasuredReadout, cirq_model
from qmu_core.qnn.encoding import model_encoding
from qmu_core.qnn.frontend import model_front_end

__all__ = [
    "MEASUREMENT_KEY",
    "CircuitStats",
    "Prepared",
    "measured_circuit",
    "prepare",
    "prepare_model",
    "resolved_circuits",
    "theta",
]

# cirq 1.5 warns about a 1.6 default for every CircuitOperation its compiler builds internally (nothing
# QMU can pass); `warnings.catch_warnings` is not thread-safe and stages run in threads, so the filter
# is set once, for that message only.
warnings.filterwarnings("ignore", message=".*use_repetition_ids", category=FutureWarning)

MEASUREMENT_KEY = "z"
"""Key of the one measurement every prepared circuit ends with (qubits in logical order)."""

# ---------------------------------------------------------------------------- resolved circuits


def theta(weights: pd.DataFrame, model: ModelConfig) -> np.ndarray:
    """The trained circuit weights of a `model` table, in `circuits.weight_symbols` order (a plug-in's: its own).

    Raises:
        ArtifactError: If the table has no ``theta`` or it does not fit `model`'s circuit.
    """
    found = frames.arrays(weights)
    if "theta" not in found:
        raise ArtifactError(
            f"The weights table has variables {sorted(found)} but no 'theta'; it is not a QMU model table."
        )
    values = found["theta"].ravel()
    if model.is_plugin:
        expected = len(cirq_model(model).weights)
        circuit = f"the circuit of model plug-in {model.kind!r}"
    else:
        expected = 3 * model.n_qubits * model.layers
        circuit = f"a {model.n_qubits}-qubit, {model.layers}-layer circuit"
    if values.size != expected:
        raise ArtifactError(
            f"The weights' theta has {values.size} values, but {circuit} has {expected}; the weights come from "
            "a different model config."
        )
    return values


def measured_circuit(model: ModelConfig) -> tuple[cirq.Circuit, list[str], list[str]]:
    """The circuit the hardware path measures, its input symbol names and its weight symbol names.

    QMU's own circuit (`circuits.build_circuit`), or a model plug-in's on ``cirq.LineQubit(0..n-1)``
    (its sorted qubits renumbered) followed by the basis change its read-out needs
    (`qmu_core.qnn.cirq_model.MeasuredReadout`): a Z measurement of every qubit then yields every
    read-out observable.
    """
    spec = cirq_model(model)
    if not model.is_plugin:
        return spec.circuit, list(spec.inputs), list(spec.weights)
    logical = {q: cirq.LineQubit(i) for i, q in enumerate(spec.qubits)}
    change = MeasuredReadout.of(spec).basis_change
    circuit = (spec.circuit + cirq.Circuit(change)).transform_qubits(lambda q: logical[q])
    return circuit, list(spec.inputs), list(spec.weights)


def resolved_circuits(weights: pd.DataFrame, features: np.ndarray, model: ModelConfig) -> list[cirq.Circuit]:
    """One concrete circuit per record: the model circuit with `theta` and the record's inputs bound.

    Args:
        weights: The `model` table of a trained basic QNN or model plug-in (``variable``, ``shape``, ``values``).
        features: The records' features ``(B, width)``: the split's ``x`` column.
        model: The model section the weights were trained with.

    Returns:
        Circuits on ``cirq.LineQubit(0..n-1)`` without measurements and without any symbol; a
        plug-in's end with its read-out's basis change (`measured_circuit`).

    Raises:
        ConfigError: For an HQNN (its CNN front end runs on the CPU), or features of the wrong width.
        ArtifactError: If the weights do not fit the model.
    """
    if not model_front_end(model).reads_features:
        raise ConfigError(
            f"model.kind={model.kind!r}: the HQNN's CNN front end runs on the CPU, and the hardware path needs "
            "a basic QNN (model.kind='basic_qnn') whose circuit reads the features directly."
        )
    circuit, names, wsyms = measured_circuit(model)
    fixed = dict(zip(wsyms, theta(weights, model), strict=True))
    out = []
    for row in cirq_model(model).input_values(features):
        values = {**fixed, **dict(zip(names, row, strict=True))}
        resolved = cirq.resolve_parameters(circuit, cirq.ParamResolver({k: float(v) for k, v in values.items()}))
        if cirq.is_parameterized(resolved):
            raise ArtifactError(f"Circuit symbols {sorted(cirq.parameter_names(resolved))} stayed unresolved.")
        out.append(resolved)
    return out


# ---------------------------------------------------------------------------- preparation


@dataclass(frozen=True)
class CircuitStats:
    """Size of one circuit before (logical, the model's gates) and after compilation (no measurement)."""

    depth_before: int
    depth_after: int
    two_qubit_before: int
    two_qubit_after: int


@dataclass
class Prepared:
    """Circuits ready to sample: measured into key `MEASUREMENT_KEY`, qubits in logical order.

    Attributes:
        circuits: One circuit per record, ending with ``cirq.measure(*qubits, key="z")``.
        qubits: The physical qubit of each logical qubit (``qubits[i]`` carries logical ``i``).
        target: The name of the processor compiled for, or None (LineQubits, no compilation).
        stats: Depth and two-qubit-gate counts of every circuit before and after compilation.
    """

    circuits: list[cirq.Circuit]
    qubits: tuple[cirq.Qid, ...]
    target: str | None = None
    stats: list[CircuitStats] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        """Mean depth and two-qubit counts over the circuits, before and after compilation."""
        if not self.stats:
            return {}
        keys = ("depth_before", "depth_after", "two_qubit_before", "two_qubit_after")
        return {k: float(np.mean([getattr(s, k) for s in self.stats])) for k in keys}


def _logical_qubits(circuit: cirq.AbstractCircuit) -> list[cirq.LineQubit]:
    found = sorted(circuit.all_qubits())
    n = len(found)
    if found != cirq.LineQubit.range(n):
        raise ConfigError(
            f"prepare() expects circuits on cirq.LineQubit(0..n-1) (from resolved_circuits), got qubits {found}."
        )
    if cirq.is_parameterized(circuit):
        raise ConfigError(
            f"prepare() got a circuit with unresolved symbols {sorted(cirq.parameter_names(circuit))}; "
            "compilation leaves such gates unconverted, so resolve every symbol first (resolved_circuits)."
        )
    if circuit.has_measurements():
        raise ConfigError("prepare() expects circuits without measurements; it adds the read-out itself.")
    return found


def _place(
    circuit: cirq.Circuit,
    mapping: dict[cirq.LineQubit, cirq.Qid],
    edges: set[frozenset[cirq.Qid]],
    dev: Any,
    *,
    route: bool,
    target: Processor,
) -> tuple[cirq.Circuit, tuple[cirq.Qid, ...]]:
    """The circuit on device qubits and the physical qubit each logical qubit ends on.

    Logical qubit ``i`` goes to ``mapping[i]`` (the ring) when every two-qubit gate then couples
    neighbours; otherwise `cirq.RouteCQC` places and routes it on the whole device graph.
    """
    placed = circuit.transform_qubits(lambda q: mapping[q])
    uncoupled = [op for op in placed.all_operations() if cirq.num_qubits(op) == 2 and frozenset(op.qubits) not in edges]
    if not uncoupled:
        return placed, tuple(mapping[q] for q in sorted(mapping))
    if not route:
        raise ConfigError(
            f"{len(uncoupled)} two-qubit gates (first: {uncoupled[0]}) act on qubits that are not coupled on "
            f"{target.name} (amplitude encoding's state preparation); pass route=True to insert SWAPs, use "
            "model.encoding='angle' on a device, or target=None."
        )
    routed, initial, swaps = cirq.RouteCQC(dev.metadata.nx_graph).route_circuit(circuit)
    # initial: logical -> physical at the start; swaps: physical at the start -> physical at the end
    return cirq.Circuit(routed), tuple(swaps[initial[q]] for q in sorted(mapping))


def prepare(
    circuits_: Sequence[cirq.Circuit],
    *,
    target: Processor | None,
    qubits: Sequence[cirq.GridQubit] | None = None,
    route: bool = True,
    validate: bool = True,
    gateset: cirq.CompilationTargetGateset | None = None,
) -> Prepared:
    """Place, compile, validate and measure resolved circuits for `target`.

    Args:
        circuits_: Concrete circuits on ``cirq.LineQubit(0..n-1)`` without measurements
            (`resolved_circuits`), all on the same n qubits.
        target: None (keep LineQubits, no compilation: for simulators) or a `Processor`: logical
            qubit ``i`` goes to ``qubits[i]``, the circuit is compiled with
            ``cirq.optimize_for_target_gateset`` to the processor's gate set (`Processor.gateset`).
        qubits: The device qubits to use, a ring in order; default `best_ring` of the target.
        route: When the ring placement leaves a two-qubit gate between uncoupled qubits
            (amplitude encoding's state preparation), route the circuit with ``cirq.RouteCQC``
            on the device graph (SWAPs inserted; the read-out follows each logical qubit to where
            it ends). With False such circuits raise `ConfigError`.
        validate: Check every final circuit with the device's ``validate_circuit``.
        gateset: Compilation target; default the processor's (`Processor.gateset`).

    Raises:
        ConfigError: For circuits that are not concrete LineQubit circuits, or
            (``route=False``) a two-qubit gate between qubits the ring placement leaves uncoupled.
    """
    if not circuits_:
        raise ConfigError("prepare() got no circuits; pass at least one record's circuit.")
    logical = _logical_qubits(circuits_[0])
    n = len(logical)
    if target is None:
        physical: list[cirq.Qid] = list(logical)
        dev = None
    else:
        dev = target.device
        layers = max(1, round(two_qubit_count(circuits_[0]) / n))  # CNOTs per ring edge: the ansatz's layers
        physical = list(qubits) if qubits is not None else best_ring(target, n, layers=layers)
        if len(physical) != n:
            raise ConfigError(f"prepare() got {len(physical)} device qubits for a {n}-qubit circuit.")
    mapping = dict(zip(logical, physical, strict=True))
    edges: set[frozenset[cirq.Qid]] = set() if dev is None else {frozenset(e) for e in dev.metadata.nx_graph.edges()}
    out: list[cirq.Circuit] = []
    stats: list[CircuitStats] = []
    readout_qubits: tuple[cirq.Qid, ...] | None = None
    for circuit in circuits_:
        if sorted(circuit.all_qubits()) != logical:
            raise ConfigError("prepare() got circuits on different qubits; prepare one model's circuits at a time.")
        _logical_qubits(circuit)
        if target is None:
            compiled, final_qubits = circuit, tuple(physical)
        else:
            placed, final_qubits = _place(circuit, mapping, edges, dev, route=route, target=target)
            compiled = _compile(placed, gateset or target.gateset)
        if readout_qubits is None:
            readout_qubits = final_qubits
        elif final_qubits != readout_qubits:
            raise ConfigError(
                "Routing placed the records' circuits differently; prepare them one at a time "
                f"(first read-out {readout_qubits}, now {final_qubits})."
            )
        final = compiled + cirq.Moment(cirq.measure(*final_qubits, key=MEASUREMENT_KEY))
        if dev is not None and validate:
            dev.validate_circuit(final)
        out.append(final)
        stats.append(
            CircuitStats(
                depth_before=len(circuit),
                depth_after=len(compiled),
                two_qubit_before=two_qubit_count(circuit),
                two_qubit_after=two_qubit_count(compiled),
            )
        )
    assert readout_qubits is not None
    return Prepared(circuits=out, qubits=readout_qubits, target=None if target is None else target.name, stats=stats)


def _is_input_op(op: cirq.Operation, inputs: set[str]) -> bool:
    return bool(cirq.parameter_names(op) & inputs)


def _segments(circuit: cirq.Circuit, inputs: set[str]) -> list[cirq.Circuit | list[cirq.Operation]] | None:
    """The circuit cut into fixed chunks (`cirq.Circuit`) and input moments (lists of operations).

    Every moment is split into its input operations (single-qubit rotations by an input symbol)
    followed by the rest (they act on other qubits, so the order is free). None when an input
    symbol sits in a multi-qubit operation (amplitude encoding): then each record compiles alone.
    """
    parts: list[cirq.Circuit | list[cirq.Operation]] = []
    fixed: list[cirq.Moment] = []
    for moment in circuit:
        moving = [op for op in moment if _is_input_op(op, inputs)]
        if any(cirq.num_qubits(op) != 1 for op in moving):
            return None
        if moving:
            if fixed:
                parts.append(cirq.Circuit(fixed))
                fixed = []
            parts.append(moving)
        rest = [op for op in moment if not _is_input_op(op, inputs)]
        if rest:
            fixed.append(cirq.Moment(rest))
    if fixed:
        parts.append(cirq.Circuit(fixed))
    return parts


def _phxz(op: cirq.Operation, resolver: cirq.ParamResolver) -> cirq.Operation:
    """A resolved single-qubit operation as the device-native `cirq.PhasedXZGate` (exact up to global phase)."""
    resolved = cirq.resolve_parameters(op, resolver)
    return cirq.PhasedXZGate.from_matrix(cirq.unitary(resolved)).on(*resolved.qubits)


def prepare_model(
    weights: pd.DataFrame,
    features: np.ndarray,
    model: ModelConfig,
    *,
    target: Processor | None,
    qubits: Sequence[cirq.GridQubit] | None = None,
    gateset: cirq.CompilationTargetGateset | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Prepared:
    """Every record's circuit of a trained basic QNN, prepared for `target` (module doc).

    The result equals ``prepare(resolved_circuits(weights, features, model), target=...)`` up to
    how single-qubit gates are grouped, and is much faster for angle encoding on a device: the
    weights are resolved and the circuit's fixed parts are placed and compiled *once*; each
    record only adds its input rotations, each as one `cirq.PhasedXZGate` (a device-native gate)
    in its own moment. Only the first circuit is validated whole; the others differ from it only
    in those rotations, which are validated one by one. Amplitude encoding (input symbols in
    multi-qubit gates) and model plug-ins (their circuits may couple any qubits) compile every
    record alone (`prepare`).

    Args:
        weights: The `model` table of a trained basic QNN, as for `resolved_circuits`.
        features: The records' features ``(B, width)``, as for `resolved_circuits`.
        model: The model section the weights were trained with, as for `resolved_circuits`.
        target: None (LineQubits, no compilation) or a `Processor`.
        qubits: Device qubits, a ring in order; default `best_ring` (lowest calibrated error).
        gateset: Compilation target; default the processor's (`Processor.gateset`).
        progress: Called as ``progress(done, total)`` while records are prepared.
    """
    alone = model.is_plugin or not model_encoding(model).single_qubit_inputs
    if not model_front_end(model).reads_features or target is None or alone:
        circuits_ = resolved_circuits(weights, features, model)
        return prepare(circuits_, target=target, qubits=qubits, gateset=gateset)
    circuit, inputs = circuits.build_circuit(
        model.n_qubits, model.layers, encoding=model.encoding, reupload=model.reupload
    )
    wsyms = [str(s) for s in circuits.weight_symbols(model.n_qubits, model.layers)]
    fixed = cirq.ParamResolver(dict(zip(wsyms, map(float, theta(weights, model)), strict=True)))
    template = cirq.resolve_parameters(circuit, fixed)
    names = [str(s) for s in inputs]
    parts = _segments(template, set(names))
    if parts is None:  # pragma: no cover - angle encoding always splits
        return prepare(resolved_circuits(weights, features, model), target=target, qubits=qubits, gateset=gateset)
    dev = target.device
    logical = sorted(template.all_qubits())
    physical = list(qubits) if qubits is not None else best_ring(target, len(logical), layers=model.layers)
    if len(physical) != len(logical):
        raise ConfigError(f"prepare_model() got {len(physical)} device qubits for a {len(logical)}-qubit circuit.")
    mapping = dict(zip(logical, physical, strict=True))
    edges = {frozenset(e) for e in dev.metadata.nx_graph.edges()}
    compiled_parts: list[cirq.Circuit | list[cirq.Operation]] = []
    for part in parts:
        if isinstance(part, cirq.Circuit):
            placed, _ = _place(part, mapping, edges, dev, route=False, target=target)
            compiled_parts.append(_compile(placed, gateset or target.gateset))
        else:
            compiled_parts.append([op.transform_qubits(mapping) for op in part])
    readout = cirq.Moment(cirq.measure(*physical, key=MEASUREMENT_KEY))
    values = model_encoding(model).values(features, model)
    before = CircuitStats(len(circuit), 0, two_qubit_count(circuit), 0)
    out: list[cirq.Circuit] = []
    stats: list[CircuitStats] = []
    for k, row in enumerate(values):
        resolver = cirq.ParamResolver(dict(zip(names, map(float, row), strict=True)))
        moments: list[cirq.Moment] = []
        for part in compiled_parts:
            if isinstance(part, cirq.Circuit):
                moments.extend(part.moments)
            else:
                ops = [_phxz(op, resolver) for op in part]
                if k > 0:
                    for op in ops:
                        dev.validate_operation(op)
                moments.append(cirq.Moment(ops))
        body = cirq.Circuit.from_moments(*moments)
        final = body + readout
        if k == 0:
            dev.validate_circuit(final)
            after = CircuitStats(before.depth_before, len(body), before.two_qubit_before, two_qubit_count(body))
        out.append(final)
        stats.append(after)
        if progress is not None:
            progress(k + 1, len(values))
    return Prepared(circuits=out, qubits=tuple(physical), target=target.name, stats=stats)


def _compile(circuit: cirq.Circuit, gateset: cirq.CompilationTargetGateset) -> cirq.Circuit:
    return cirq.optimize_for_target_gateset(circuit, gateset=gateset)
