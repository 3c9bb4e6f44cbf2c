"""Per-record circuits of a trained basic QNN, placed and compiled for a Google device.

* `resolved_circuits`: the model circuit (`qmu_core.qnn.circuits.build_circuit`) with the trained
  ``theta`` and every record's input-symbol values bound: concrete circuits on
  ``cirq.LineQubit(0..n-1)``, without measurements (simulate them for exact ⟨Z⟩);
* `device_ring`: n device qubits forming a cycle of the device's coupling graph;
* `prepare`: for ``target=None`` the circuits stay on LineQubits (simulators); for a Google
  processor (``"rainbow"``, ``"weber"``, from cirq-google's offline virtual engine) logical qubit
  ``i`` goes to ring qubit ``i``, so the model's CNOT ring ``0->1->...->n-1->0`` only couples
  neighbours (angle encoding), then the circuit is compiled to the √iSWAP gate set (the processors' calibrated
  two-qubit gate) and validated against the device. Every prepared circuit ends with one
  measurement ``cirq.measure(*qubits, key="z")`` in *logical* order, so bit ``i`` of a sample is
  logical qubit ``i`` whatever physical qubit carries it;
* `to_frame` / `from_frame`: prepared circuits as rows of Cirq JSON (``cirq.to_json``).

Amplitude encoding's state preparation couples non-neighbouring qubits (CNOTs from qubit
``k - 1 - b`` to ``k``), which a ring cannot host: such circuits are placed and routed by
``cirq.RouteCQC`` on the whole device graph (SWAPs inserted, so far more two-qubit gates: 8 qubits,
2 layers measured 270 -> 664 √iSWAPs on rainbow), and the read-out measures each logical qubit
where routing left it.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cirq
import numpy as np
import pandas as pd

from qmu_core import frames
from qmu_core.config import ModelConfig
from qmu_core.errors import ArtifactError, ConfigError
from qmu_core.qnn import amplitude, circuits

__all__ = [
    "MEASUREMENT_KEY",
    "TARGETS",
    "CircuitStats",
    "Prepared",
    "device",
    "device_ring",
    "from_frame",
    "input_values",
    "prepare",
    "resolved_circuits",
    "theta",
    "to_frame",
    "two_qubit_count",
]

MEASUREMENT_KEY = "z"
"""Key of the one measurement every prepared circuit ends with (qubits in logical order)."""

TARGETS: tuple[str, ...] = ("rainbow", "weber")
"""Google processors of cirq-google's offline virtual engine (latest calibration templates)."""


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


@functools.cache
def device(target: str) -> Any:
    """The `cirq_google.GridDevice` of a processor of the offline virtual engine.

    Raises:
        ConfigError: If `target` is not one of `TARGETS`.
    """
    if target not in TARGETS:
        raise ConfigError(f"Unknown hardware target {target!r}; use one of {list(TARGETS)} or None (simulator).")
    import cirq_google

    engine = cirq_google.engine.create_noiseless_virtual_engine_from_latest_templates()
    return engine.get_processor(target).get_device()


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
) -> Prepared:
    """Place, compile, validate and measure resolved circuits for `target`.

    Args:
        circuits_: Concrete circuits on ``cirq.LineQubit(0..n-1)`` without measurements
            (`resolved_circuits`), all on the same n qubits.
        target: None (keep LineQubits, no compilation: for simulators) or a processor of
            `TARGETS`: logical qubit ``i`` goes to ``qubits[i]``, the circuit is compiled with
            ``cirq.optimize_for_target_gateset(..., gateset=cirq.SqrtIswapTargetGateset())``.
        qubits: The device qubits to use, a ring in order; default `device_ring` of the target.
        route: When the ring placement leaves a two-qubit gate between uncoupled qubits
            (amplitude encoding's state preparation), route the circuit with ``cirq.RouteCQC``
            on the device graph (SWAPs inserted; the read-out follows each logical qubit to where
            it ends). With False such circuits raise `ConfigError`.
        validate: Check every final circuit with the device's ``validate_circuit``.

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
        physical = list(qubits) if qubits is not None else list(device_ring(dev, n))
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
            with warnings.catch_warnings():  # cirq 1.5 warns per CircuitOperation it builds internally
                warnings.filterwarnings("ignore", message=".*use_repetition_ids", category=FutureWarning)
                compiled = cirq.optimize_for_target_gateset(placed, gateset=cirq.SqrtIswapTargetGateset())
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
