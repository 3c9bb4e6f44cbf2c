"""Where on a device the model's circuit runs: qubit rings and their calibrated cost.

* `device_ring` / `rings`: n device qubits forming a cycle of the device's coupling graph: the
  first one (deterministic depth-first search) and all of them, each once;
* `ring_cost`: a first-order estimate of the total error of running the model's circuit on a
  ring (calibrated two-qubit, single-qubit and readout errors plus T1/Tphi decay over the
  circuit's duration, from `Processor.noise_properties`);
* `best_ring`: the ring with the lowest cost for the angle-encoded model circuit of n qubits and
  ``layers`` layers compiled for the processor, which `qmu_core.hardware.prepare` uses by default.

The model's CNOT ring ``0->1->...->n-1->0`` only couples neighbours when logical qubit ``i`` sits on
ring qubit ``i``. TensorFlow-free: Cirq and NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import Any

import cirq
import cirq_google
import numpy as np

from qmu_core.errors import ConfigError
from qmu_core.hardware.devices import Processor
from qmu_core.qnn import circuits

__all__ = ["best_ring", "device_ring", "ring_cost", "rings", "two_qubit_count"]


# ---------------------------------------------------------------------------- rings of a device


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
    """`n` qubits of `dev` forming a cycle of its coupling graph, in ring order.

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


# ---------------------------------------------------------------------------- calibrated cost


def two_qubit_count(circuit: cirq.AbstractCircuit) -> int:
    """Operations acting on two qubits (measurements excluded)."""
    return sum(1 for op in circuit.all_operations() if cirq.num_qubits(op) == 2 and not cirq.is_measurement(op))


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


def ring_cost(
    processor: Processor,
    ring: Sequence[cirq.Qid],
    *,
    two_qubit_gates_per_edge: float,
    duration_ns: float,
    single_qubit_gates_per_qubit: float = 0.0,
) -> float:
    """Estimated total error of running the model's circuit on `ring` (qubits in ring order); lower is better.

    With ``g2 = two_qubit_gates_per_edge``, ``g1 = single_qubit_gates_per_qubit`` and
    ``D = duration_ns``, from the processor's median calibration (`Processor.noise_properties`)::

        cost = sum over ring edges (ring[i], ring[(i + 1) % n]):  g2 * e2(edge)
             + sum over ring qubits q:  D / T1(q) + D / Tphi(q) + (e0(q) + e1(q)) / 2 + g1 * e1q(q)

    * ``e2``: the calibrated Pauli error of the processor's compiled two-qubit gate (the gate
      `Processor.gateset` compiles a CNOT to: CZ on willow_pink, √iSWAP on rainbow and weber) on that
      coupler, or the process infidelity ``1 - |tr U|^2 / 16`` of the coupler's coherent
      entangler (PhasedFSim) error when that is larger: `qmu_core.hardware.noise.noise_model` splits the Pauli error
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
        ConfigError: For fewer than 2 or repeated qubits, or a negative or non-finite gate count or
            duration.
    """
    g2 = _count(two_qubit_gates_per_edge, "two_qubit_gates_per_edge")
    g1 = _count(single_qubit_gates_per_qubit, "single_qubit_gates_per_qubit")
    duration = _count(duration_ns, "duration_ns")
    qubits = list(ring)
    if len(qubits) < 2 or len(set(qubits)) != len(qubits):
        raise ConfigError(f"ring_cost({processor.name!r}): a ring needs at least 2 distinct qubits, got {qubits}.")
    props = processor.noise_properties
    two_qubit = processor.two_qubit_gate_type
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


# ---------------------------------------------------------------------------- the best ring


_BEST_RINGS: dict[tuple[str, int, int], tuple[cirq.GridQubit, ...]] = {}


def _ansatz_load(processor: Processor, n: int, layers: int) -> tuple[float, float, float]:
    """Two-qubit gates per ring edge, single-qubit gates per qubit and duration (ns) of the compiled ansatz.

    The angle-encoded model circuit (`circuits.build_circuit`, n qubits, `layers` layers) with
    generic fixed angles, compiled to the processor's gate set (`Processor.gateset`: a CNOT
    becomes 1 CZ on willow_pink, 2 √iSWAPs on rainbow and weber), timed moment by moment
    (`Processor.circuit_duration_ns`) without its read-out.
    """
    circuit, inputs = circuits.build_circuit(n, layers, encoding="angle")
    symbols = [str(s) for s in inputs] + [str(s) for s in circuits.weight_symbols(n, layers)]
    angles = np.random.default_rng(0).uniform(0.1, 3.0, len(symbols))
    resolved = cirq.resolve_parameters(circuit, dict(zip(symbols, map(float, angles), strict=True)))
    compiled = processor.compile(resolved)
    two = two_qubit_count(compiled)
    one = sum(1 for op in compiled.all_operations() if cirq.num_qubits(op) == 1)
    return two / n, one / n, processor.circuit_duration_ns(compiled)


def best_ring(processor: Processor, n: int, *, layers: int) -> list[cirq.GridQubit]:
    """The ring of n qubits of `processor` with the lowest `ring_cost` for the model's circuit.

    Every ring of `rings` is scored by `ring_cost` with the two-qubit gates per
    coupler, single-qubit gates per qubit and duration of the angle-encoded circuit of n qubits
    and `layers` layers compiled for the processor (`_ansatz_load`: n CNOTs per layer on the
    ring), so the calibration decides: on willow_pink 8 qubits avoid the short-Tphi qubits
    (0, 8) and (1, 8) of `device_ring`. Equal costs keep the earlier ring of `rings` (when
    every ring lacks calibration data, that is `device_ring`). The ring is in order: logical
    qubit ``i`` couples to ``i + 1`` and ``n - 1`` to 0. Cached per (processor, n, layers).

    Raises:
        ConfigError: For a device without a ring of n qubits, or layers that are not a whole
            number >= 0.
    """
    if isinstance(layers, bool) or not isinstance(layers, int | np.integer) or layers < 0:
        raise ConfigError(f"best_ring(): layers={layers!r}; pass the model's number of layers (an int >= 0).")
    key = (processor.name, int(n), int(layers))
    if key not in _BEST_RINGS:
        candidates = rings(processor.device, n)
        two, one, duration = _ansatz_load(processor, n, int(layers))
        costs = [
            ring_cost(
                processor,
                ring,
                two_qubit_gates_per_edge=two,
                duration_ns=duration,
                single_qubit_gates_per_qubit=one,
            )
            for ring in candidates
        ]
        _BEST_RINGS[key] = tuple(candidates[int(np.argmin(costs))])
    return list(_BEST_RINGS[key])
