"""Calibration-aware rings: `layout.rings`, `layout.ring_cost`, `layout.best_ring` and their use by `prepare`."""

from __future__ import annotations

import math
import types
from typing import Any

import cirq
import numpy as np
import pandas as pd
import pytest

from qmu_core.config import ModelConfig
from qmu_core.errors import ConfigError
from qmu_core.hardware import devices, layout
from qmu_core.hardware import prepare as hp
from qmu_core.hardware.devices import processor
from qmu_core.hardware.noise import noise_model
from qmu_core.qnn import circuits

WILLOW = processor("willow_pink")
BAD_QUBITS = {cirq.GridQubit(0, 8), cirq.GridQubit(1, 8)}  # Tphi 4.8 us and 11 us on willow_pink


def _edges(dev: Any) -> set[frozenset[cirq.Qid]]:
    return {frozenset(e) for e in dev.metadata.nx_graph.edges()}


def _ring_edges(ring: list[cirq.GridQubit]) -> frozenset[frozenset[cirq.GridQubit]]:
    return frozenset(frozenset((ring[i], ring[(i + 1) % len(ring)])) for i in range(len(ring)))


@pytest.mark.parametrize(("name", "n"), [("rainbow", 4), ("rainbow", 8), ("weber", 6), ("willow_pink", 8)])
def test_rings_are_every_cycle_once(name: str, n: int) -> None:
    dev = processor(name).device
    edges = _edges(dev)
    found = layout.rings(dev, n)
    assert found and found == sorted(found)
    for ring in found:
        assert len(ring) == n and len(set(ring)) == n
        assert all(frozenset((ring[i], ring[(i + 1) % n])) in edges for i in range(n))  # closing edge included
        assert ring[0] == min(ring) and ring[1] < ring[-1]  # canonical start and direction
    # a cycle is its set of edges: equal sets are the same cycle up to rotation and reflection
    assert len({_ring_edges(r) for r in found}) == len(found)
    assert found[0] == layout.device_ring(dev, n)
    if n == 4:  # on a grid the 4-cycles are exactly the unit squares
        qubits = set(dev.metadata.qubit_set)
        squares = [
            [q, q + (0, 1), q + (1, 1), q + (1, 0)]
            for q in qubits
            if {q + (0, 1), q + (1, 1), q + (1, 0)} <= qubits
            and all(frozenset(p) in edges for p in [(q, q + (0, 1)), (q + (0, 1), q + (1, 1))])
            and all(frozenset(p) in edges for p in [(q + (1, 1), q + (1, 0)), (q + (1, 0), q)])
        ]
        assert {_ring_edges(r) for r in found} == {_ring_edges(s) for s in squares}


def test_rings_include_a_known_rectangle_and_pairs() -> None:
    dev = WILLOW.device
    top = [cirq.GridQubit(5, c) for c in range(1, 5)]
    assert top + [q + (1, 0) for q in reversed(top)] in layout.rings(dev, 8)  # rows 5-6, columns 1-4
    pairs = layout.rings(dev, 2)
    assert len(pairs) == len(_edges(dev)) and pairs[0] == layout.device_ring(dev, 2)
    with pytest.raises(ConfigError, match="no ring"):
        layout.rings(dev, 7)


def _ansatz_load(name: str, n: int, layers: int) -> dict[str, float]:
    two, one, duration = layout._ansatz_load(processor(name), n, layers)
    return {"two_qubit_gates_per_edge": two, "single_qubit_gates_per_qubit": one, "duration_ns": duration}


def test_ansatz_load_counts_the_compiled_gates() -> None:
    cz = _ansatz_load("willow_pink", 8, 10)
    assert cz["two_qubit_gates_per_edge"] == 10  # one CZ per CNOT, one CNOT per ring edge and layer
    assert _ansatz_load("rainbow", 8, 10)["two_qubit_gates_per_edge"] == 20  # two √iSWAPs per CNOT
    # the CNOT ring is sequential: at least n two-qubit moments per layer, each with its 42 ns CZ
    assert 8 * 10 * 42 < cz["duration_ns"] < 8 * 10 * (42 + 2 * 25) + 2 * 25


def test_ring_cost_follows_its_formula() -> None:
    props = WILLOW.noise_properties
    ring = layout.device_ring(WILLOW.device, 4)
    expected = 0.0
    for i in range(4):
        a, b = ring[i], ring[(i + 1) % 4]
        key = cirq.OpIdentifier(cirq.CZPowGate, a, b)
        pauli = props.gate_pauli_errors[key]
        entangler = 1 - abs(np.trace(cirq.unitary(props.fsim_errors[key]))) ** 2 / 16
        expected += 3 * max(pauli, entangler)
    for q in ring:
        expected += 1000 / props.t1_ns[q] + 1000 / props.tphi_ns[q] + sum(props.readout_errors[q]) / 2
        expected += 5 * props.gate_pauli_errors[cirq.OpIdentifier(cirq.PhasedXZGate, q)]
    cost = layout.ring_cost(WILLOW, ring, two_qubit_gates_per_edge=3, duration_ns=1000, single_qubit_gates_per_qubit=5)
    assert cost == pytest.approx(expected, rel=1e-12)
    # more gates or a longer circuit never cost less
    assert layout.ring_cost(WILLOW, ring, two_qubit_gates_per_edge=4, duration_ns=1000) > layout.ring_cost(
        WILLOW, ring, two_qubit_gates_per_edge=3, duration_ns=1000
    )
    with pytest.raises(ConfigError, match="distinct"):
        layout.ring_cost(WILLOW, [ring[0], ring[0]], two_qubit_gates_per_edge=1, duration_ns=0)
    with pytest.raises(ConfigError, match="duration_ns"):
        layout.ring_cost(WILLOW, ring, two_qubit_gates_per_edge=1, duration_ns=-1)


def test_missing_calibration_is_never_free(monkeypatch: pytest.MonkeyPatch) -> None:
    props = WILLOW.noise_properties
    dev = WILLOW.device
    ring = layout.device_ring(dev, 4)
    kw: dict[str, float] = {"two_qubit_gates_per_edge": 1, "duration_ns": 1000}
    # two qubits that are not coupled have no two-qubit error
    uncoupled = [ring[0], ring[2], ring[1], ring[3]]
    assert math.isinf(layout.ring_cost(WILLOW, uncoupled, **kw))

    def patched(**changes: Any) -> None:
        fields = {f: getattr(props, f) for f in ("gate_pauli_errors", "fsim_errors", "t1_ns", "tphi_ns")}
        fields["readout_errors"] = props.readout_errors
        fields.update(changes)
        patched_props = property(lambda self: types.SimpleNamespace(**fields))
        monkeypatch.setattr(devices.Processor, "noise_properties", patched_props)

    base = layout.ring_cost(WILLOW, ring, **kw)
    q = ring[1]
    patched(tphi_ns={**props.tphi_ns, q: math.inf})  # no dephasing at all: that term is 0
    assert layout.ring_cost(WILLOW, ring, **kw) == pytest.approx(base - 1000 / props.tphi_ns[q])
    patched(t1_ns={k: v for k, v in props.t1_ns.items() if k != q})
    assert math.isinf(layout.ring_cost(WILLOW, ring, **kw))
    patched(readout_errors={k: v for k, v in props.readout_errors.items() if k != q})
    assert math.isinf(layout.ring_cost(WILLOW, ring, **kw))
    dropped = {k: v for k, v in props.gate_pauli_errors.items() if set(k.qubits) != {ring[0], ring[1]}}
    patched(gate_pauli_errors=dropped)
    assert math.isinf(layout.ring_cost(WILLOW, ring, **kw))
    assert math.isinf(layout.ring_cost(WILLOW, ring, two_qubit_gates_per_edge=0, duration_ns=1000))


def test_best_ring_avoids_the_bad_qubits_of_willow_pink() -> None:
    dev = WILLOW.device
    first = layout.device_ring(dev, 8)
    assert set(first) >= BAD_QUBITS  # the calibration-blind ring sits on them
    best = layout.best_ring(WILLOW, 8, layers=10)
    assert best in layout.rings(dev, 8) and not BAD_QUBITS & set(best)
    load = _ansatz_load("willow_pink", 8, 10)
    costs = [layout.ring_cost(WILLOW, r, **load) for r in layout.rings(dev, 8)]
    assert layout.ring_cost(WILLOW, best, **load) == min(costs) < layout.ring_cost(WILLOW, first, **load)
    assert layout.best_ring(WILLOW, 8, layers=10) == best and layout.best_ring(WILLOW, 8, layers=10) is not best
    with pytest.raises(ConfigError, match="layers"):
        layout.best_ring(WILLOW, 8, layers=-1)


def _signal(ring: list[cirq.GridQubit], logical: list[cirq.Circuit], noise: cirq.NoiseModel | None) -> np.ndarray:
    """⟨Z_i⟩ per record (rows) of the circuits prepared on `ring`, exact density matrices, no read-out."""
    prepared = hp.prepare(logical, target=WILLOW, qubits=ring)
    sim = cirq.DensityMatrixSimulator(dtype=np.complex128, noise=noise)
    signs = circuits.z_signs(len(ring)).astype(np.float64)
    out = []
    for circuit in prepared.circuits:
        rho = sim.simulate(cirq.drop_terminal_measurements(circuit), qubit_order=ring).final_density_matrix
        out.append(np.real(np.diag(rho)) @ signs)
    return np.array(out)


def test_the_best_ring_keeps_more_record_dependent_signal() -> None:
    """4 qubits, 8 layers on willow_pink: the lowest-cost ring against the highest-cost one (which holds (0, 8))."""
    n, layers, records = 4, 8, 4
    rng = np.random.default_rng(21)
    circuit, inputs = circuits.build_circuit(n, layers, encoding="angle")
    names = [str(s) for s in circuits.weight_symbols(n, layers)] + [str(s) for s in inputs]
    theta = rng.uniform(0, 2 * np.pi, 3 * n * layers)
    logical = [
        cirq.resolve_parameters(circuit, dict(zip(names, [*theta, *rng.uniform(0, np.pi, n)], strict=True)))
        for _ in range(records)
    ]
    load = _ansatz_load("willow_pink", n, layers)
    every = layout.rings(WILLOW.device, n)
    worst = max(every, key=lambda r: layout.ring_cost(WILLOW, r, **load))
    best = layout.best_ring(WILLOW, n, layers=layers)
    assert cirq.GridQubit(0, 8) in worst and not BAD_QUBITS & set(best)

    def retention(ring: list[cirq.GridQubit]) -> float:
        ideal = _signal(ring, logical, None)
        noisy = _signal(ring, logical, noise_model(WILLOW))
        return float(np.linalg.norm(noisy - noisy.mean(0)) / np.linalg.norm(ideal - ideal.mean(0)))

    kept_best, kept_worst = retention(best), retention(worst)
    assert kept_best > kept_worst + 0.1, (kept_best, kept_worst)


def test_prepare_defaults_to_the_best_ring() -> None:
    model = ModelConfig(n_qubits=4, layers=2)
    rng = np.random.default_rng(4)
    weights = pd.DataFrame({"variable": ["theta"], "shape": [[24]], "values": [rng.normal(size=24)]})
    x = rng.uniform(0, np.pi, size=(2, 4))
    best = tuple(layout.best_ring(WILLOW, 4, layers=2))
    assert best != tuple(layout.device_ring(WILLOW.device, 4))
    assert hp.prepare(hp.resolved_circuits(weights, x, model), target=WILLOW).qubits == best
    assert hp.prepare_model(weights, x, model, target=WILLOW).qubits == best
    ring = layout.device_ring(WILLOW.device, 4)
    assert hp.prepare_model(weights, x, model, target=WILLOW, qubits=ring).qubits == tuple(ring)
