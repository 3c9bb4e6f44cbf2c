"""Per-record circuits of a trained basic QNN, placed and compiled for a Google device.

* `resolved_circuits`: the model circuit (`qmu_core.qnn.circuits.build_circuit`) with the trained
  ``theta`` and every record's input-symbol values bound: concrete circuits on
  ``cirq.LineQubit(0..n-1)``, without measurements (simulate them for exact ⟨Z⟩);
* `device_ring` / `rings` / `best_ring`: n device qubits forming a cycle of the device's coupling
  graph: the first one, all of them, and the one with the lowest calibrated error
  (`processors.ring_cost`: two-qubit gate errors, T1/Tphi decay over the circuit, read-out),
  which `prepare` and `prepare_model` use by default;
* `prepare`: for ``target=None`` the circuits stay on LineQubits (simulators); for a Google
  processor (``"rainbow"``, ``"weber"``, ``"willow_pink"``: `qmu_core.hardware.processors`) logical
  qubit ``i`` goes to ring qubit ``i``, so the model's CNOT ring ``0->1->...->n-1->0`` only couples
  neighbours (angle encoding), then the circuit is compiled to the processor's calibrated
  two-qubit gate (√iSWAP on rainbow and weber, CZ on willow_pink) and validated against the
  device. Every prepared circuit ends with one measurement ``cirq.measure(*qubits, key="z")`` in
  *logical* order, so bit ``i`` of a sample is logical qubit ``i`` whatever physical qubit carries it;
* `prepare_model`: the same for a model and its records, compiling the fixed parts once (fast);
* `to_frame` / `from_frame`: prepared circuits as rows of Cirq JSON (``cirq.to_json``).

Amplitude encoding's state preparation couples non-neighbouring qubits (CNOTs from qubit
``k - 1 - b`` to ``k``), which a ring cannot host: such circuits are placed and routed by
``cirq.RouteCQC`` on the whole device graph (SWAPs inserted, so far more two-qubit gates: 8 qubits,
2 layers measured 270 -> 664 √iSWAPs on rainbow), and the read-out measures each logical qubit
where routing left it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cirq
import numpy as np
import pandas as pd

from qmu_core import frames
from qmu_core.config import ModelConfig
from qmu_core.errors import ArtifactError, ConfigError
from qmu_core.hardware import processors
from qmu_core.qnn import amplitude, circuits

__all__ = [
    "MEASUREMENT_KEY",
    "TARGETS",
    "CircuitStats",
    "Prepared",
    "device",
    "best_ring",
    "device_ring",
    "from_frame",
    "input_values",
    "prepare",
    "prepare_model",
    "resolved_circuits",
    "rings",
    "theta",
    "to_frame",
    "two_qubit_count",
]

# cirq 1.5 warns about a 1.6 default for every CircuitOperation its compiler builds internally (nothing
# QMU can pass); `warnings.catch_warnings` is not thread-safe and stages run in threads, so the filter
# is set once, for that message only.
warnings.filterwarnings("ignore", message=".*use_repetition_ids", category=FutureWarning)

MEASUREMENT_KEY = "z"
"""Key of the one measurement every prepared circuit ends with (qubits in logical order)."""

TARGETS: tuple[str, ...] = processors.PROCESSORS
"""Google processors QMU holds offline (`qmu_core.hardware.processors`)."""


# ---------------------------------------------------------------------------- resolved circuits


def theta(weights: pd.DataFrame, model: ModelConfig) -> np.ndarray:
    """The trained circuit weights of a `model` table, in `circuits.weight_symbols` order.

    Raises:
        ArtifactError: If the table has no ``theta`` or it does not fit `model`'s circuit.
    """
    found = frames.arrays(weights)
    if "theta" not in found:
        raise ArtifactError(
            f"The weights table has variables {sorted(found)} but no 'theta'; it is not a QMU model table."
        )
    values = found["theta"].ravel()
    expected = 3 * model.n_qubits * model.layers
    if values.size != expected:
        raise ArtifactError(
            f"The weights' theta has {values.size} values, but a {model.n_qubits}-qubit, {model.layers}-layer "
            f"circuit has {expected}; the weights come from a different model config."
        )
    return values


def input_values(features: np.ndarray, model: ModelConfig) -> np.ndarray:
    """Values of the circuit's input symbols per record, ``(B, n_inputs)`` float64 (NumPy).

    Angle encoding binds the features as they are (tiled per layer with re-uploading); amplitude
    encoding binds the state-preparation angles (`qmu_core.qnn.amplitude.angles_np`). This is the
    NumPy twin of `qmu_core.qnn.backends.base.symbol_values`.

    Raises:
        ConfigError: If `features` is not ``(B, width)`` with the width the encoding reads.
    """
    x = np.asarray(features, dtype=np.float64)
    width = model.feature_spec.n_components
    if x.ndim != 2 or x.shape[1] != width:
        raise ConfigError(
            f"{model.encoding} encoding on {model.n_qubits} qubits reads {width} features per record, got an "
            f"array of shape {x.shape}; pass the split's `x` column stacked as (records, {width})."
        )
    if model.encoding == "amplitude":
        return amplitude.angles_np(x)
    if model.reupload:
        return np.tile(x, (1, model.layers))
    return x


def resolved_circuits(weights: pd.DataFrame, features: np.ndarray, model: ModelConfig) -> list[cirq.Circuit]:
    """One concrete circuit per record: the model circuit with `theta` and the record's inputs bound.

    Args:
        weights: The `model` table of a trained basic QNN (``variable``, ``shape``, ``values``).
        features: The records' features ``(B, width)``: the split's ``x`` column.
        model: The model section the weights were trained with.

    Returns:
        Circuits on ``cirq.LineQubit(0..n-1)`` without measurements and without any symbol.

    Raises:
        ConfigError: For an HQNN (its CNN front end runs on the CPU), or features of the wrong width.
        ArtifactError: If the weights do not fit the model.
    """
    if model.kind != "basic_qnn":
        raise ConfigError(
            f"model.kind={model.kind!r}: the HQNN's CNN front end runs on the CPU, and the hardware path needs "
            "a basic QNN (model.kind='basic_qnn') whose circuit reads the features directly."
        )
    circuit, inputs = circuits.build_circuit(
        model.n_qubits, model.layers, encoding=model.encoding, reupload=model.reupload
    )
    names = [str(s) for s in inputs]
    wsyms = [str(s) for s in circuits.weight_symbols(model.n_qubits, model.layers)]
    fixed = dict(zip(wsyms, theta(weights, model), strict=True))
    out = []
    for row in input_values(features, model):
        values = {**fixed, **dict(zip(names, row, strict=True))}
        resolved = cirq.resolve_parameters(circuit, cirq.ParamResolver({k: float(v) for k, v in values.items()}))
        if cirq.is_parameterized(resolved):
            raise ArtifactError(f"Circuit symbols {sorted(cirq.parameter_names(resolved))} stayed unresolved.")
        out.append(resolved)
    return out


# ---------------------------------------------------------------------------- devices


def device(target: str) -> Any:
    """The `cirq_google.GridDevice` of a processor of `TARGETS` (`processors.device`).

    Raises:
        ConfigError: If `target` is not one of `TARGETS`.
    """
    if target not in TARGETS:
        raise ConfigError(f"Unknown hardware target {target!r}; use one of {list(TARGETS)} or None (simulator).")
    return processors.device(target)


def _graph(dev: Any) -> dict[cirq.Qid, set[cirq.Qid]]:
    adjacency: dict[cirq.Qid, set[cirq.Qid]] = {q: set() for q in dev.metadata.qubit_set}
    for a, b in dev.metadata.nx_graph.edges():
        adjacency[a].add(b)
        adjacency[b].add(a)
    return adjacency


def _bipartite(adjacency: dict[cirq.Qid, set[cirq.Qid]]) -> bool:
    colour: dict[cirq.Qid, int] = {}
    for root in sorted(adjacency):
        if root in colour:
            continue
        colour[root] = 0
        stack = [root]
        while stack:
            q = stack.pop()
            for p in adjacency[q]:
                if p not in colour:
                    colour[p] = 1 - colour[q]
                    stack.append(p)
                elif colour[p] == colour[q]:
                    return False
    return True


def device_ring(dev: Any, n: int) -> list[cirq.GridQubit]:
    """n qubits of `dev` forming a cycle of its coupling graph, in ring order.

    Qubit ``i`` couples to qubit ``i + 1`` and qubit ``n - 1`` to qubit 0 (for ``n = 2``, one
    coupled pair). The search is a depth-first search from the smallest qubit upwards, so the
    ring is deterministic; on a grid, 8 qubits give a 2x4 rectangle or a similar compact cycle.

    Raises:
        ConfigError: If the device has no such cycle (on a square grid: odd n).
    """
    adjacency = _graph(dev)
    nodes = sorted(adjacency)
    if n == 2:
        for q in nodes:
            if adjacency[q]:
                return [q, min(adjacency[q])]
    no_ring = (
        f"The device has no ring (cycle) of {n} coupled qubits, which the model's CNOT ring needs; "
        "choose an even model.n_qubits on a square-grid device, or a smaller one."
    )
    if n < 2 or (n % 2 == 1 and _bipartite(adjacency)) or n > len(nodes):
        raise ConfigError(no_ring)
    for start in nodes:
        found = _cycle_from(start, n, adjacency)
        if found is not None:
            return found
    raise ConfigError(no_ring)


def _cycle_from(start: cirq.Qid, n: int, adjacency: dict[cirq.Qid, set[cirq.Qid]]) -> list[Any] | None:
    """A cycle of length n through `start` using only qubits greater than `start`, or None."""
    path = [start]
    on_path = {start}

    def extend() -> bool:
        last = path[-1]
        if len(path) == n:
            return start in adjacency[last]
        for q in sorted(adjacency[last]):
            if q > start and q not in on_path:
                path.append(q)
                on_path.add(q)
                if extend():
                    return True
                on_path.discard(path.pop())
        return False

    return path if extend() else None


def rings(dev: Any, n: int) -> list[list[cirq.GridQubit]]:
    """Every cycle of n coupled qubits of `dev`, each once, in ring order (as `device_ring` gives one).

    A cycle is listed once whatever its rotation or direction: it starts at its smallest qubit and
    runs towards the smaller of that qubit's two ring neighbours (``ring[1] < ring[-1]``). The
    list is sorted by the rings' qubit sequences, so it is deterministic and ``rings(dev, n)[0]``
    is ``device_ring(dev, n)``. For ``n = 2`` a ring is one coupled pair ``[a, b]`` with
    ``a < b`` (the model's two CNOTs act on it). A depth-first search pruned by the distance back
    to the start: willow_pink (105 qubits) has 401 rings of 8 qubits and 5,292 of 12 (< 1 s).

    Raises:
        ConfigError: If the device has no such cycle, as `device_ring` raises it.
    """
    device_ring(dev, n)  # the same checks and errors; raises when there is no ring at all
    adjacency = _graph(dev)
    nodes = sorted(adjacency)
    if n == 2:
        return [[a, b] for a in nodes for b in sorted(adjacency[a]) if a < b]
    return sorted(ring for start in nodes for ring in _cycles_from(start, n, adjacency))


def _cycles_from(start: cirq.Qid, n: int, adjacency: dict[cirq.Qid, set[cirq.Qid]]) -> list[list[Any]]:
    """Every cycle of length n through `start` and qubits greater than it, once (``path[1] < path[-1]``)."""
    distance = {start: 0}  # graph distance back to `start` through qubits above it
    frontier = [start]
    while frontier:
        step = []
        for q in frontier:
            for p in adjacency[q]:
                if p > start and p not in distance:
                    distance[p] = distance[q] + 1
                    step.append(p)
        frontier = step
    path = [start]
    on_path = {start}
    found: list[list[Any]] = []

    def extend() -> None:
        if len(path) == n:
            if start in adjacency[path[-1]] and path[1] < path[-1]:
                found.append(list(path))
            return
        left = n - len(path)  # edges still to walk after the next qubit, the closing edge included
        for q in sorted(adjacency[path[-1]]):
            if q > start and q not in on_path and distance.get(q, n) <= left:
                path.append(q)
                on_path.add(q)
                extend()
                on_path.discard(path.pop())

    extend()
    return found


_BEST_RINGS: dict[tuple[str, int, int], tuple[cirq.GridQubit, ...]] = {}


def _ansatz_load(target: str, n: int, layers: int) -> tuple[float, float, float]:
    """Two-qubit gates per ring edge, single-qubit gates per qubit and duration (ns) of the compiled ansatz.

    The angle-encoded model circuit (`circuits.build_circuit`, n qubits, `layers` layers) with
    generic fixed angles, compiled to the processor's gate set (`processors.gateset`: a CNOT
    becomes 1 CZ on willow_pink, 2 √iSWAPs on rainbow and weber), timed moment by moment
    (`processors.circuit_duration_ns`) without its read-out.
    """
    circuit, inputs = circuits.build_circuit(n, layers, encoding="angle")
    symbols = [str(s) for s in inputs] + [str(s) for s in circuits.weight_symbols(n, layers)]
    angles = np.random.default_rng(0).uniform(0.1, 3.0, len(symbols))
    resolved = cirq.resolve_parameters(circuit, dict(zip(symbols, map(float, angles), strict=True)))
    compiled = _compile(resolved, processors.gateset(target))
    two = two_qubit_count(compiled)
    one = sum(1 for op in compiled.all_operations() if cirq.num_qubits(op) == 1)
    return two / n, one / n, processors.circuit_duration_ns(target, compiled)


def best_ring(target: str, n: int, *, layers: int) -> list[cirq.GridQubit]:
    """The ring of n qubits of `target` with the lowest `processors.ring_cost` for the model's circuit.

    Every ring of `rings` is scored by `processors.ring_cost` with the two-qubit gates per
    coupler, single-qubit gates per qubit and duration of the angle-encoded circuit of n qubits
    and `layers` layers compiled for the processor (`_ansatz_load`: n CNOTs per layer on the
    ring), so the calibration decides: on willow_pink 8 qubits avoid the short-Tphi qubits
    (0, 8) and (1, 8) of `device_ring`. Equal costs keep the earlier ring of `rings` (when
    every ring lacks calibration data, that is `device_ring`). The ring is in order: logical
    qubit ``i`` couples to ``i + 1`` and ``n - 1`` to 0. Cached per (target, n, layers).

    Raises:
        ConfigError: For an unknown target, a device without a ring of n qubits, or layers that
            are not a whole number >= 0.
    """
    if isinstance(layers, bool) or not isinstance(layers, int | np.integer) or layers < 0:
        raise ConfigError(f"best_ring(): layers={layers!r}; pass the model's number of layers (an int >= 0).")
    key = (target, int(n), int(layers))
    if key not in _BEST_RINGS:
        dev = device(target)
        candidates = rings(dev, n)
        two, one, duration = _ansatz_load(target, n, int(layers))
        costs = [
            processors.ring_cost(
                target,
                ring,
                two_qubit_gates_per_edge=two,
                duration_ns=duration,
                single_qubit_gates_per_qubit=one,
            )
            for ring in candidates
        ]
        _BEST_RINGS[key] = tuple(candidates[int(np.argmin(costs))])
    return list(_BEST_RINGS[key])


# ---------------------------------------------------------------------------- preparation


def two_qubit_count(circuit: cirq.AbstractCircuit) -> int:
    """Operations acting on two qubits (measurements excluded)."""
    return sum(1 for op in circuit.all_operations() if cirq.num_qubits(op) == 2 and not cirq.is_measurement(op))


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
        target: The processor compiled for, or None (LineQubits, no compilation).
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
    target: str | None,
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
            f"{target} (amplitude encoding's state preparation); pass route=True to insert SWAPs, use "
            "model.encoding='angle' on a device, or target=None."
        )
    routed, initial, swaps = cirq.RouteCQC(dev.metadata.nx_graph).route_circuit(circuit)
    # initial: logical -> physical at the start; swaps: physical at the start -> physical at the end
    return cirq.Circuit(routed), tuple(swaps[initial[q]] for q in sorted(mapping))


def prepare(
    circuits_: Sequence[cirq.Circuit],
    *,
    target: str | None,
    qubits: Sequence[cirq.GridQubit] | None = None,
    route: bool = True,
    validate: bool = True,
    gateset: cirq.CompilationTargetGateset | None = None,
) -> Prepared:
    """Place, compile, validate and measure resolved circuits for `target`.

    Args:
        circuits_: Concrete circuits on ``cirq.LineQubit(0..n-1)`` without measurements
            (`resolved_circuits`), all on the same n qubits.
        target: None (keep LineQubits, no compilation: for simulators) or a processor of
            `TARGETS`: logical qubit ``i`` goes to ``qubits[i]``, the circuit is compiled with
            ``cirq.optimize_for_target_gateset`` to the processor's gate set (`processors.gateset`).
        qubits: The device qubits to use, a ring in order; default `best_ring` of the target.
        route: When the ring placement leaves a two-qubit gate between uncoupled qubits
            (amplitude encoding's state preparation), route the circuit with ``cirq.RouteCQC``
            on the device graph (SWAPs inserted; the read-out follows each logical qubit to where
            it ends). With False such circuits raise `ConfigError`.
        validate: Check every final circuit with the device's ``validate_circuit``.
        gateset: Compilation target; default the processor's (`processors.gateset`).

    Raises:
        ConfigError: For unknown targets, circuits that are not concrete LineQubit circuits, or
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
        dev = device(target)
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
        if dev is None:
            compiled, final_qubits = circuit, tuple(physical)
        else:
            placed, final_qubits = _place(circuit, mapping, edges, dev, route=route, target=target)
            compiled = _compile(placed, gateset or processors.gateset(target))
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
    return Prepared(circuits=out, qubits=readout_qubits, target=target, stats=stats)


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
    target: str | None,
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
    multi-qubit gates) compiles every record alone (`prepare`).

    Args:
        weights, features, model: As for `resolved_circuits`.
        target: None (LineQubits, no compilation) or a processor of `TARGETS`.
        qubits: Device qubits, a ring in order; default `best_ring` (lowest calibrated error).
        gateset: Compilation target; default the processor's (`processors.gateset`).
        progress: Called as ``progress(done, total)`` while records are prepared.
    """
    if model.kind != "basic_qnn" or target is None or model.encoding != "angle":
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
    dev = device(target)
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
            compiled_parts.append(_compile(placed, gateset or processors.gateset(target)))
        else:
            compiled_parts.append([op.transform_qubits(mapping) for op in part])
    readout = cirq.Moment(cirq.measure(*physical, key=MEASUREMENT_KEY))
    values = input_values(features, model)
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
    return Prepared(circuits=out, qubits=tuple(physical), target=target, stats=stats)


def _compile(circuit: cirq.Circuit, gateset: cirq.CompilationTargetGateset) -> cirq.Circuit:
    return cirq.optimize_for_target_gateset(circuit, gateset=gateset)


# ---------------------------------------------------------------------------- storage


def to_frame(prepared: Prepared, sample_ids: Iterable[int]) -> pd.DataFrame:
    """One row per circuit: ``sample_id``, ``target``, ``circuit_json`` (``cirq.to_json``) and its stats."""
    ids = np.asarray(list(sample_ids), dtype=np.int64)
    if len(ids) != len(prepared.circuits):
        raise ConfigError(f"to_frame() got {len(ids)} sample ids for {len(prepared.circuits)} circuits.")
    stats = prepared.stats or [CircuitStats(-1, -1, -1, -1)] * len(ids)
    return pd.DataFrame(
        {
            "sample_id": ids,
            "target": [prepared.target or ""] * len(ids),
            "circuit_json": [cirq.to_json(c) for c in prepared.circuits],
            "depth_before": np.array([s.depth_before for s in stats], dtype=np.int64),
            "depth_after": np.array([s.depth_after for s in stats], dtype=np.int64),
            "two_qubit_before": np.array([s.two_qubit_before for s in stats], dtype=np.int64),
            "two_qubit_after": np.array([s.two_qubit_after for s in stats], dtype=np.int64),
        }
    )


def _readout_qubits(circuit: cirq.AbstractCircuit) -> tuple[cirq.Qid, ...]:
    for op in circuit.all_operations():
        if cirq.is_measurement(op) and cirq.measurement_key_name(op) == MEASUREMENT_KEY:
            return tuple(op.qubits)
    raise ArtifactError(f"A stored circuit has no measurement with key {MEASUREMENT_KEY!r}; it was not prepared.")


def from_frame(frame: pd.DataFrame) -> Prepared:
    """The `Prepared` circuits of a `to_frame` table (rows in the table's order)."""
    loaded = [cirq.read_json(json_text=text) for text in frame["circuit_json"]]
    if not loaded:
        raise ArtifactError("The prepared-circuits table is empty.")
    qubits = _readout_qubits(loaded[0])
    if any(_readout_qubits(c) != qubits for c in loaded[1:]):
        raise ArtifactError("The stored circuits measure different qubits; they were not prepared together.")
    targets = {str(t) for t in frame["target"]} if "target" in frame else {""}
    if len(targets) != 1:
        raise ArtifactError(f"The stored circuits were prepared for several targets {sorted(targets)}.")
    stats = []
    if {"depth_before", "depth_after", "two_qubit_before", "two_qubit_after"} <= set(frame.columns):
        stats = [
            CircuitStats(int(a), int(b), int(c), int(d))
            for a, b, c, d in zip(
                frame["depth_before"],
                frame["depth_after"],
                frame["two_qubit_before"],
                frame["two_qubit_after"],
                strict=True,
            )
        ]
    return Prepared(circuits=loaded, qubits=qubits, target=targets.pop() or None, stats=stats)
