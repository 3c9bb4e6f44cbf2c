"""The noisy density-matrix emulator (qmu_core.hardware.emulator).

References: the noisy circuit exactly as ``cirq.DensityMatrixSimulator(noise=...)`` builds it (the
noise model applied to the whole circuit), simulated in complex128; the simulator itself; and, in
distribution, Google's noisy quantum virtual machine (qsim trajectories).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import cirq
import numpy as np
import pytest
import sympy
from scipy import stats

from qmu_core.errors import ConfigError
from qmu_core.hardware import sampling as hs
from qmu_core.hardware.devices import processor
from qmu_core.hardware.emulator import DensityMatrixEmulator
from qmu_core.hardware.noise import noise_model
from qmu_core.hardware.planning import MAX_QUBITS

F32_TOL = 300 * float(np.finfo(np.float32).eps)  # float32 arithmetic through tens of fused operations
F64_TOL = 1e-12
# Coupled rainbow qubits along a path: (4,1)-(4,2)-(4,3)-(5,3)-(5,2).
PATH = [cirq.GridQubit(4, 1), cirq.GridQubit(4, 2), cirq.GridQubit(4, 3), cirq.GridQubit(5, 3), cirq.GridQubit(5, 2)]
GATES: dict[cirq.Gate, int] = {
    cirq.X: 1,
    cirq.H: 1,
    cirq.T: 1,
    cirq.rx(0.3): 1,
    cirq.PhasedXZGate(x_exponent=0.3, z_exponent=0.7, axis_phase_exponent=-0.2): 1,
    cirq.CNOT: 2,
    cirq.CZ: 2,
    cirq.SQRT_ISWAP: 2,
    cirq.FSimGate(theta=0.4, phi=0.9): 2,
}


@pytest.fixture(scope="module")
def rainbow() -> cirq.NoiseModel:
    return noise_model(processor("rainbow"))


def constant(kind: str) -> cirq.NoiseModel | None:
    if kind == "none":
        return None
    channel = cirq.depolarize(0.03) if kind == "depolarize" else cirq.amplitude_damp(0.08)
    return cirq.ConstantQubitNoiseModel(channel)


# ---------------------------------------------------------------------------- references


def reference(circuit: cirq.Circuit, noise: cirq.NoiseModel | None) -> np.ndarray:
    """Exact distribution of the measured bits, as `probabilities` orders them, in complex128.

    The noise is added exactly as ``cirq.DensityMatrixSimulator(noise=noise)`` adds it (the model
    applied to the whole circuit, then every operation in order); measurements are dropped
    (readout noise inserted before them stays) and the final density matrix's diagonal is
    marginalised onto the measured qubits.
    """
    system = sorted(circuit.all_qubits())
    model = cirq.NO_NOISE if noise is None else noise
    ops: list[cirq.Operation] = []
    measured: set[cirq.Qid] = set()
    measurements: list[cirq.Operation] = []
    for tree in model.noisy_moments(circuit, system):
        for op in cirq.flatten_to_ops(tree):
            if cirq.is_measurement(op):
                measured |= set(op.qubits)
                measurements.append(op)
            elif not measured & set(op.qubits):  # noise after a measurement cannot change its bits
                ops.append(op)
    sim = cirq.DensityMatrixSimulator(dtype=np.complex128)
    rho = sim.simulate(cirq.Circuit(ops), qubit_order=system).final_density_matrix
    n = len(system)
    diag = np.real(np.diag(rho)).reshape((2,) * n)
    bits = [system.index(q) for op in measurements for q in op.qubits]
    unmeasured = tuple(i for i in range(n) if i not in bits)
    p = diag.sum(axis=unmeasured) if unmeasured else diag
    p = p.transpose([sorted(bits).index(i) for i in bits])
    invert = [b for op in measurements for b in op.gate.full_invert_mask()]
    flips = tuple(i for i, b in enumerate(invert) if b)
    return (np.flip(p, axis=flips) if flips else p).reshape(-1)


def random_measured(n: int, seed: int) -> cirq.Circuit:
    """A random circuit on n line qubits with two measurement keys over a shuffled subset, one inverted."""
    rng = np.random.default_rng(seed)
    qs = cirq.LineQubit.range(n)
    circuit = cirq.testing.random_circuit(qs, n_moments=8, op_density=0.9, gate_domain=GATES, random_state=seed)
    order = [qs[i] for i in rng.permutation(n)][: max(1, n - 1)]  # leave one qubit unmeasured
    if len(order) == 1:
        return circuit + cirq.Moment(cirq.measure(order[0], key="a"))
    head, tail = order[: len(order) // 2], order[len(order) // 2 :]
    return circuit + cirq.Moment(
        cirq.measure(*head, key="a"), cirq.measure(*tail, key="b", invert_mask=(True,) + (False,) * (len(tail) - 1))
    )


def compiled_on_rainbow(n: int, layers: int, seed: int, *, measure: Sequence[int] | None = None) -> cirq.Circuit:
    """Random layers (PhasedXZ everywhere, CZ/CNOT on neighbours) on a rainbow path, compiled to √iSWAP."""
    rng = np.random.default_rng(seed)
    line = cirq.LineQubit.range(n)
    circuit = cirq.Circuit()
    for layer in range(layers):
        circuit += cirq.Moment(
            cirq.PhasedXZGate(
                x_exponent=rng.uniform(0, 1), z_exponent=rng.uniform(-1, 1), axis_phase_exponent=rng.uniform(-1, 1)
            ).on(q)
            for q in line
        )
        for i in range(layer % 2, n - 1, 2):
            circuit += (cirq.CZ, cirq.CNOT)[int(rng.integers(2))](line[i], line[i + 1])
    placed = circuit.transform_qubits(dict(zip(line, PATH, strict=False)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        compiled = cirq.optimize_for_target_gateset(placed, gateset=cirq.SqrtIswapTargetGateset())
    measured = [PATH[i] for i in (range(n) if measure is None else measure)]
    return compiled + cirq.Moment(cirq.measure(*measured, key="z"))


def encoded_batch(n: int, records: int, seed: int, body_seed: int = 5) -> list[cirq.Circuit]:
    """Circuits sharing everything but their first moment (one PhasedXZ per qubit), like model records."""
    rng = np.random.default_rng(seed)
    body = compiled_on_rainbow(n, 3, body_seed)
    out = []
    for _ in range(records):
        a = rng.uniform(-1, 1, size=(n, 3))
        first = cirq.Moment(
            cirq.PhasedXZGate(x_exponent=x, z_exponent=z, axis_phase_exponent=p).on(q)
            for q, (x, z, p) in zip(PATH[:n], a, strict=True)
        )
        out.append(cirq.Circuit([first]) + body)
    return out


# ---------------------------------------------------------------------------- exactness


@pytest.mark.parametrize("n", [2, 3, 4, 5])
@pytest.mark.parametrize("kind", ["none", "depolarize", "amplitude_damp"])
def test_probabilities_equal_the_density_matrix_simulator(n: int, kind: str) -> None:
    noise = constant(kind)
    circuits = [random_measured(n, seed) for seed in (10 * n, 10 * n + 1)]
    expected = np.stack([reference(c, noise) for c in circuits])
    fast = DensityMatrixEmulator(noise).probabilities(circuits)
    exact = DensityMatrixEmulator(noise, dtype=np.complex128).probabilities(circuits)
    assert fast.dtype == np.float64 and fast.shape == expected.shape
    np.testing.assert_allclose(fast.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(fast, expected, atol=F32_TOL, rtol=0)
    np.testing.assert_allclose(exact, expected, atol=F64_TOL, rtol=0)


def test_reference_uses_the_simulator_noise_path_directly(rainbow: cirq.NoiseModel) -> None:
    """The reference equals ``cirq.DensityMatrixSimulator(noise=...)`` itself: its state just before measuring."""
    circuit = compiled_on_rainbow(3, 3, seed=1)
    system = sorted(circuit.all_qubits())
    sim = cirq.DensityMatrixSimulator(noise=rainbow, dtype=np.complex128)
    states = [step.density_matrix(copy=True) for step in sim.simulate_moment_steps(circuit, qubit_order=system)]
    diag = np.real(np.diag(states[-2])).reshape((2,) * 3)  # the last step is the (collapsing) measurement
    direct = diag.transpose([system.index(q) for q in PATH[:3]]).reshape(-1)
    np.testing.assert_allclose(reference(circuit, rainbow), direct, atol=1e-12)
    np.testing.assert_allclose(DensityMatrixEmulator(rainbow).probabilities([circuit])[0], direct, atol=F32_TOL)


@pytest.mark.parametrize(("n", "seed", "measure"), [(2, 1, None), (3, 2, None), (4, 3, [2, 0, 3]), (5, 4, None)])
def test_probabilities_under_googles_rainbow_model(
    rainbow: cirq.NoiseModel, n: int, seed: int, measure: list[int] | None
) -> None:
    circuit = compiled_on_rainbow(n, 4, seed, measure=measure)
    expected = reference(circuit, rainbow)
    np.testing.assert_allclose(DensityMatrixEmulator(rainbow).probabilities([circuit])[0], expected, atol=F32_TOL)
    exact = DensityMatrixEmulator(rainbow, dtype=np.complex128).probabilities([circuit])[0]
    np.testing.assert_allclose(exact, expected, atol=F64_TOL)


def test_per_moment_noise_needs_the_idle_qubits(rainbow: cirq.NoiseModel) -> None:
    """Google's model takes the qubits from the circuit it is given: a lone moment misses idle-qubit noise.

    Applying it naively moment by moment therefore differs from applying it to the whole circuit
    (which the emulator matches, above); this is what the emulator's padding of idle qubits is for.
    """
    circuit = compiled_on_rainbow(3, 3, seed=7)
    system = sorted(circuit.all_qubits())
    naive = cirq.Circuit(op for m in circuit for tree in rainbow.noisy_moments([m], system) for op in tree)
    plain = DensityMatrixEmulator(None, dtype=np.complex128).probabilities([naive])[0]
    expected = reference(circuit, rainbow)
    assert np.abs(plain - expected).max() > 1e-3
    emulated = DensityMatrixEmulator(rainbow, dtype=np.complex128).probabilities([circuit])[0]
    np.testing.assert_allclose(emulated, expected, atol=F64_TOL)


# ---------------------------------------------------------------------------- batching


def test_shared_suffix_batch_equals_one_by_one(rainbow: cirq.NoiseModel) -> None:
    batch = encoded_batch(3, 20, seed=1)
    other = encoded_batch(3, 3, seed=2, body_seed=6)  # a second model: nothing in common but the qubits
    emulator = DensityMatrixEmulator(rainbow)
    together = emulator.probabilities(batch + other + [batch[4]])  # and a duplicate
    assert emulator.last_stats["distinct"] == 23
    assert emulator.last_stats["transfer_groups"] == 1  # 20 >= 2^3 circuits through the first body
    assert emulator.last_stats["forward_groups"] == 1  # 3 < 2^3 through the second
    alone = []
    for c in batch + other:
        single = DensityMatrixEmulator(rainbow)
        alone.append(single.probabilities([c])[0])
        assert single.last_stats["forward_groups"] == 1
    np.testing.assert_allclose(together[:-1], np.stack(alone), atol=F32_TOL)
    np.testing.assert_array_equal(together[-1], together[4])


def test_mixed_layouts_in_one_batch(rainbow: cirq.NoiseModel) -> None:
    batch = encoded_batch(3, 10, seed=3)
    partial = [c[:-1] + cirq.Moment(cirq.measure(PATH[1], PATH[0], key="z")) for c in batch[:3]]
    results = DensityMatrixEmulator(rainbow, seed=3).run_batch(batch + partial, repetitions=5)
    assert [r[0].measurements["z"].shape for r in results] == [(5, 3)] * 10 + [(5, 2)] * 3
    emulator = DensityMatrixEmulator(rainbow, dtype=np.complex128)
    np.testing.assert_allclose(
        emulator.probabilities(partial), np.stack([reference(c, rainbow) for c in partial]), atol=F64_TOL
    )


def test_transfer_matrix_is_kept_across_calls(rainbow: cirq.NoiseModel) -> None:
    """Small batches run forward until their count pays for the transfer matrix, then reuse it."""
    circuits = encoded_batch(3, 12, seed=4)
    emulator = DensityMatrixEmulator(rainbow, dtype=np.complex128)
    modes, rows = [], []
    for part in (circuits[:3], circuits[3:6], circuits[6:9], circuits[9:]):
        rows.append(emulator.probabilities(part))
        modes.append((emulator.last_stats.get("forward_groups", 0), emulator.last_stats.get("transfer_groups", 0)))
    assert modes == [(1, 0), (1, 0), (0, 1), (0, 1)]
    expected = np.stack([reference(c, rainbow) for c in circuits])
    np.testing.assert_allclose(np.concatenate(rows), expected, atol=F64_TOL)


def test_small_memory_budget_chunks_the_batch() -> None:
    """6 qubits in complex128: a state is 32 KiB, the transfer matrix of 5 measured bits 1 MiB."""
    noise = constant("depolarize")
    qs = cirq.LineQubit.range(6)
    body = cirq.testing.random_circuit(qs, n_moments=6, op_density=0.9, gate_domain=GATES, random_state=4)
    body += cirq.Moment(cirq.measure(*qs[:3], key="z"), cirq.measure(qs[4], qs[3], key="y", invert_mask=(True,)))
    rng = np.random.default_rng(0)
    circuits = [
        cirq.Circuit(cirq.Moment(cirq.rx(a).on(q) for q, a in zip(qs, rng.uniform(0, 3, 6), strict=True))) + body
        for _ in range(40)
    ]
    expected = DensityMatrixEmulator(noise, dtype=np.complex128).probabilities(circuits)
    for budget, mode in ((2 * 2**20, "transfer_groups"), (2**20, "forward_groups")):
        tight = DensityMatrixEmulator(noise, dtype=np.complex128, max_batch_bytes=budget)
        np.testing.assert_allclose(tight.probabilities(circuits), expected, atol=F64_TOL)
        assert tight.last_stats[mode] == 1
    np.testing.assert_allclose(expected[:2], np.stack([reference(c, noise) for c in circuits[:2]]), atol=F64_TOL)
    with pytest.raises(ConfigError, match="max_batch_bytes"):
        DensityMatrixEmulator(max_batch_bytes=1000)
    with pytest.raises(ConfigError, match="max_batch_bytes"):
        DensityMatrixEmulator(dtype=np.complex128, max_batch_bytes=2**20).probabilities(
            [cirq.Circuit(cirq.X.on_each(cirq.LineQubit.range(9)), cirq.measure(qs[0], key="a"))]
        )


def test_circuit_operations_are_unrolled() -> None:
    noise = constant("amplitude_damp")
    flat = random_measured(3, seed=21)
    body, last = flat[:-1], flat[-1]
    nested = cirq.Circuit(cirq.CircuitOperation(body.freeze()), last)
    emulator = DensityMatrixEmulator(noise, dtype=np.complex128)
    np.testing.assert_allclose(emulator.probabilities([nested]), emulator.probabilities([flat]), atol=F64_TOL)


# ---------------------------------------------------------------------------- sampling


def counts_of(bits: np.ndarray) -> np.ndarray:
    m = bits.shape[1]
    index = np.asarray(bits, dtype=np.int64) @ (1 << np.arange(m - 1, -1, -1))
    return np.bincount(index, minlength=2**m)


def test_frequencies_match_probabilities(rainbow: cirq.NoiseModel) -> None:
    circuit = compiled_on_rainbow(3, 2, seed=11, measure=[2, 0, 1])
    p = DensityMatrixEmulator(rainbow).probabilities([circuit])[0]
    shots = 200_000
    bits = DensityMatrixEmulator(rainbow, seed=5).run(circuit, repetitions=shots).measurements["z"]
    freq = counts_of(bits) / shots
    assert np.all(np.abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / shots) + 1e-12)
    assert np.abs(freq - p[::-1]).max() > 0.01  # the bit order matters: the reversed order fails


def test_sampling_is_seeded(rainbow: cirq.NoiseModel) -> None:
    circuit = compiled_on_rainbow(3, 2, seed=12)

    def bits(seed: int | None, calls: int = 1) -> list[np.ndarray]:
        emulator = DensityMatrixEmulator(rainbow, seed=seed)
        return [emulator.run(circuit, repetitions=300).measurements["z"] for _ in range(calls)]

    first, again = bits(7, 2)
    np.testing.assert_array_equal(first, bits(7)[0])
    assert not np.array_equal(first, again)  # the stream moves on between calls
    assert not np.array_equal(first, bits(8)[0])
    outcomes = first.astype(np.int64) @ (1 << np.arange(2, -1, -1))
    assert np.any(np.diff(outcomes) < 0)  # shots come in random order, not grouped by outcome


def test_results_look_like_cirq_simulator_results() -> None:
    a, b, c = cirq.LineQubit.range(3)
    circuit = cirq.Circuit(
        cirq.X(a), cirq.CNOT(a, b), cirq.measure(b, c, key="bc"), cirq.measure(a, key="a", invert_mask=(True,))
    )
    ours = DensityMatrixEmulator(seed=1).run(circuit, repetitions=4)
    theirs = cirq.Simulator(seed=1).run(circuit, repetitions=4)
    assert isinstance(ours, cirq.ResultDict)
    assert ours.measurements.keys() == theirs.measurements.keys()
    for key in theirs.measurements:
        assert ours.measurements[key].dtype == theirs.measurements[key].dtype
        np.testing.assert_array_equal(ours.measurements[key], theirs.measurements[key])
    assert ours == theirs
    assert ours.histogram(key="bc") == theirs.histogram(key="bc")


def test_run_batch_has_the_sampler_signature() -> None:
    t = sympy.Symbol("t")
    q0, q1 = cirq.LineQubit.range(2)
    swept = cirq.Circuit(cirq.X(q0) ** t, cirq.measure(q0, key="m"))
    pair = cirq.Circuit(cirq.H(q0), cirq.CNOT(q0, q1), cirq.measure(q0, q1, key="m"))
    emulator = DensityMatrixEmulator(constant("depolarize"), seed=2)
    results = emulator.run_batch([swept, pair], params_list=[cirq.Linspace(t, 0, 1, 3), None], repetitions=[50, 7])
    assert [len(r) for r in results] == [3, 1]
    assert [r.params.value_of(t) for r in results[0]] == [0.0, 0.5, 1.0]
    assert [r.measurements["m"].shape for r in results[0]] == [(50, 1)] * 3
    assert results[1][0].measurements["m"].shape == (7, 2)
    assert results[0][0].measurements["m"].sum() < 10 < results[0][2].measurements["m"].sum()
    sweep = emulator.run_sweep(swept, cirq.Points(t, [1.0]), repetitions=3)
    assert len(sweep) == 1 and sweep[0].measurements["m"].shape == (3, 1)
    assert len(emulator.sample(pair, repetitions=6)) == 6
    assert emulator.run_batch([], repetitions=3) == []


def test_works_with_the_hardware_sampling_path(rainbow: cirq.NoiseModel) -> None:
    circuits = [c + cirq.Circuit() for c in encoded_batch(3, 4, seed=9)]
    bits = hs.run_circuits(circuits, DensityMatrixEmulator(rainbow, seed=1), 25, batch=3)
    assert bits.shape == (4, 25, 3) and bits.dtype == np.uint8


# ---------------------------------------------------------------------------- agreement with the noisy QVM


def chi2_pvalue(counts: np.ndarray, p: np.ndarray) -> float:
    """Goodness of fit of counts to p; bins expecting fewer than 5 shots are pooled into one."""
    expected = counts.sum() * p
    sparse = expected < 5
    observed = np.append(counts[~sparse], counts[sparse].sum()) if sparse.any() else counts.astype(float)
    wanted = np.append(expected[~sparse], expected[sparse].sum()) if sparse.any() else expected
    if np.any((wanted == 0) & (observed > 0)):
        return 0.0
    keep = wanted > 0
    stat = float(np.sum((observed[keep] - wanted[keep]) ** 2 / wanted[keep]))
    return float(stats.chi2.sf(stat, keep.sum() - 1))


def test_distributions_agree_with_the_noisy_qvm(rainbow: cirq.NoiseModel) -> None:
    """Counts of Google's noisy QVM (qsim trajectories) fit the emulator's probabilities, and only with noise."""
    qsimcirq = pytest.importorskip("qsimcirq")
    import cirq_google

    engine = cirq_google.engine.create_default_noisy_quantum_virtual_machine(
        "rainbow", simulator_class=qsimcirq.QSimSimulator, seed=1234
    )
    sampler = engine.get_processor("rainbow").get_sampler()
    circuits = [
        compiled_on_rainbow(3, 2, 1),
        compiled_on_rainbow(4, 2, 2),
        compiled_on_rainbow(3, 3, 3),
        compiled_on_rainbow(4, 1, 4),
    ]
    shots = 4000
    counts = [counts_of(np.asarray(r[0].measurements["z"])) for r in sampler.run_batch(circuits, repetitions=shots)]
    level = 1e-3 / len(circuits)  # Bonferroni over the circuits

    def pvalues(noise: Any) -> list[float]:
        emulator = DensityMatrixEmulator(noise)
        return [
            chi2_pvalue(c, emulator.probabilities([circuit])[0]) for c, circuit in zip(counts, circuits, strict=True)
        ]

    assert min(pvalues(rainbow)) > level, pvalues(rainbow)
    assert max(pvalues(None)) < level  # power: the test rejects a noiseless emulator on every circuit


# ---------------------------------------------------------------------------- errors


def test_invalid_circuits_raise_config_errors() -> None:
    q = cirq.LineQubit.range(3)
    emulator = DensityMatrixEmulator()
    bad: dict[str, cirq.Circuit] = {
        "mid-circuit": cirq.Circuit(cirq.measure(q[0], key="a"), cirq.X(q[0]), cirq.measure(q[0], key="b")),
        "classically controlled": cirq.Circuit(
            cirq.measure(q[0], key="a"), cirq.X(q[1]).with_classical_controls("a"), cirq.measure(q[1], key="b")
        ),
        "no measurement": cirq.Circuit(cirq.X(q[0])),
        "unresolved symbols": cirq.Circuit(cirq.X(q[0]) ** sympy.Symbol("s"), cirq.measure(q[0], key="a")),
        "more than once": cirq.Circuit(cirq.measure(q[0], key="a"), cirq.measure(q[1], key="a")),
        "confusion map": cirq.Circuit(
            cirq.measure(q[0], key="a", confusion_map={(0,): np.array([[0.9, 0.1], [0.1, 0.9]])})
        ),
        f"at most {MAX_QUBITS}": cirq.Circuit(
            cirq.X.on_each(cirq.LineQubit.range(MAX_QUBITS + 1)), cirq.measure(q[0], key="a")
        ),
        "qudits": cirq.Circuit(cirq.measure(cirq.LineQid(0, dimension=3), key="a")),
    }
    for match, circuit in bad.items():
        with pytest.raises(ConfigError, match=match):
            emulator.probabilities([circuit])
    with pytest.raises(ConfigError, match="sequence of circuits"):
        emulator.probabilities(bad["no measurement"])
    with pytest.raises(ConfigError, match="different numbers of bits"):
        emulator.probabilities([cirq.Circuit(cirq.measure(q[0], key="a")), cirq.Circuit(cirq.measure(*q, key="a"))])
    with pytest.raises(ConfigError, match="negative"):
        emulator.run_batch([cirq.Circuit(cirq.measure(q[0], key="a"))], repetitions=-1)
    with pytest.raises(ConfigError, match="dtype"):
        DensityMatrixEmulator(dtype=np.int32)
    with pytest.raises(ConfigError, match="noise"):
        DensityMatrixEmulator(noise="loud")


# ---------------------------------------------------------------------------- scaled calibration noise


def test_scaled_noise_equals_the_density_matrix_simulator_and_grows_with_the_scale() -> None:
    """``emulator.noise_scale`` (issue 31): the calibration's errors times a factor, computed two ways.

    The emulator's distribution under the scaled model equals `reference` (``cirq.DensityMatrixSimulator``'s
    noise path) at every scale; 0 is noiseless, 1 is the calibration itself, and the distribution moves
    away from the noiseless one as the scale grows.
    """
    from qmu_core.hardware.noise import scaled_properties

    proc = processor("rainbow")
    circuit = compiled_on_rainbow(3, 4, seed=7)
    assert noise_model(proc, 1.0) is noise_model(proc)
    clean = reference(circuit, None)
    moved = []
    for scale in (0.0, 0.5, 1.0, 2.0):
        noisy = noise_model(proc, scale)
        expected = reference(circuit, noisy)
        np.testing.assert_allclose(DensityMatrixEmulator(noisy).probabilities([circuit])[0], expected, atol=F32_TOL)
        moved.append(0.5 * np.abs(expected - clean).sum())
    assert moved[0] == pytest.approx(0.0, abs=1e-12) and moved[1] < moved[2] < moved[3], moved
    props = scaled_properties(proc.noise_properties, 2.0)
    q = next(iter(proc.noise_properties.t1_ns))
    assert props.t1_ns[q] == pytest.approx(proc.noise_properties.t1_ns[q] / 2)
    assert props.readout_errors[q][1] == pytest.approx(min(2 * proc.noise_properties.readout_errors[q][1], 0.5))
    with pytest.raises(ConfigError, match="noise scale -1"):
        scaled_properties(proc.noise_properties, -1.0)


def test_the_calibrated_scale_leaves_the_sampler_config_and_its_keys_as_they_were() -> None:
    from qmu_core.config import EmulatorSampler

    assert "noise_scale" not in EmulatorSampler().model_dump()  # so every stage keyed by it keeps its key
    assert EmulatorSampler(noise_scale=2.0).model_dump()["noise_scale"] == 2.0
    from qmu_core.hardware import samplers

    assert samplers.resolve(EmulatorSampler(noise_scale=0.5)).describes == "emulator (willow_pink noise x 0.5)"


def test_device_leak_circuit_under_willow_pink_noise_matches_the_density_matrix_simulator() -> None:
    """Issue 31: the emulator's exact ⟨Z⟩ equals ``cirq.DensityMatrixSimulator``'s under the same noise, within 1e-6.

    On a prepared `willow_pink` circuit of the `device_leak` preset (8 qubits, re-uploading, 80 CZs),
    with the calibration noise as calibrated, both in complex128.
    """
    import pandas as pd

    from qmu_core.config import preset
    from qmu_core.hardware import prepare as hp
    from qmu_core.qnn import circuits

    model = preset("device_leak").model
    rng = np.random.default_rng(3)
    n = 3 * model.n_qubits * model.layers
    weights = pd.DataFrame({"variable": ["theta"], "shape": [[n]], "values": [rng.normal(size=n)]})
    (logical,) = hp.resolved_circuits(weights, rng.uniform(0, np.pi, size=(1, model.n_qubits)), model)
    proc = processor("willow_pink")
    (circuit,) = hp.prepare([logical], target=proc).circuits
    signs = circuits.z_signs(model.n_qubits).astype(np.float64)
    noisy = noise_model(proc)
    emulated = DensityMatrixEmulator(noisy, dtype=np.complex128).probabilities([circuit])[0]
    expected = reference(circuit, noisy)
    np.testing.assert_allclose(emulated @ signs, expected @ signs, atol=1e-6)
    assert np.abs(expected @ signs - reference(circuit, None) @ signs).max() > 1e-3  # the noise matters
