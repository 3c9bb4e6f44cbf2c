"""Google processors offline (qmu_core.hardware.devices, noise, samplers).

willow_pink's bundled device, the gate set each processor compiles to, calibrated noise models, the virtual
and noisy-QVM samplers, and the simple noise model (checked exactly against hand-computed density matrices).
"""

from __future__ import annotations

import hashlib
from importlib import resources

import cirq
import cirq_google
import numpy as np
import pytest

from qmu_core.errors import ConfigError
from qmu_core.hardware import noise, samplers
from qmu_core.hardware.devices import PROCESSORS, processor
from qmu_core.hardware.noise import noise_model
from qmu_core.qnn import circuits

BUNDLED = {
    "willow_pink_d7v1-2024_08_16_device_spec_for_grid_device.proto.txt": (
        "a9013ac5f78e5514d1c7349c077eee49264aa80ccd2b8b3b49190898297cee5c"
    ),
    "willow_pink_d7v1-2024_08_16_calibration.json": "c6de8dd7bae2fd09165b0fbf1d2b9a8cdb3cb22b8e32bcde2414e695145aa154",
}

# cirq 1.5 warns for every CircuitOperation the compiler builds internally
pytestmark = pytest.mark.filterwarnings("ignore:.*use_repetition_ids:FutureWarning")


def _ring(dev: cirq_google.GridDevice, cols: int) -> list[cirq.GridQubit]:
    """A 2 x cols rectangle of device qubits in cycle order (top row right, bottom row back)."""
    qubits = set(dev.metadata.qubit_set)
    edges = {frozenset(e) for e in dev.metadata.nx_graph.edges()}
    for corner in sorted(qubits):
        top = [corner + (0, j) for j in range(cols)]
        ring = top + [q + (1, 0) for q in reversed(top)]
        pairs = [frozenset((ring[i], ring[(i + 1) % len(ring)])) for i in range(len(ring))]
        if set(ring) <= qubits and all(p in edges for p in pairs):
            return ring
    raise AssertionError(f"no 2 x {cols} rectangle on the device")


def _ansatz_on(ring: list[cirq.GridQubit], layers: int, seed: int = 0) -> cirq.Circuit:
    """The angle-encoded QNN circuit with random inputs and weights, logical qubit i on ring[i]."""
    circuit, inputs = circuits.build_circuit(len(ring), layers, encoding="angle")
    symbols = [str(s) for s in inputs] + [str(s) for s in circuits.weight_symbols(len(ring), layers)]
    values = np.random.default_rng(seed).uniform(0, np.pi, len(symbols))
    resolved = cirq.resolve_parameters(circuit, dict(zip(symbols, map(float, values), strict=True)))
    return resolved.transform_qubits(lambda q: ring[q.x])


def _compiled(name: str, cols: int, layers: int = 1) -> tuple[cirq.Circuit, list[cirq.GridQubit]]:
    ring = _ring(processor(name).device, cols)
    return cirq.optimize_for_target_gateset(_ansatz_on(ring, layers), gateset=processor(name).gateset), ring


def _z(circuit: cirq.Circuit, qubits: list[cirq.GridQubit], noise: cirq.NoiseModel | None = None) -> np.ndarray:
    sim = cirq.DensityMatrixSimulator(dtype=np.complex128, noise=noise)
    rho = sim.simulate(circuit, qubit_order=qubits).final_density_matrix
    return np.real(np.diag(rho)) @ circuits.z_signs(len(qubits)).astype(np.float64)


# ---------------------------------------------------------------------------- devices and data


def test_bundled_files_are_the_upstream_bytes() -> None:
    data = resources.files("qmu_core.hardware") / "data"
    for name, digest in BUNDLED.items():
        assert hashlib.sha256((data / name).read_bytes()).hexdigest() == digest, name
    assert "Apache" in (data / "README.md").read_text(encoding="utf-8")


def test_willow_pink_device_validates_a_compiled_ring() -> None:
    dev = processor("willow_pink").device
    assert isinstance(dev, cirq_google.GridDevice) and processor("willow_pink").device is dev
    assert len(dev.metadata.qubit_set) == 105 and len(dev.metadata.nx_graph.edges()) == 182
    compiled, ring = _compiled("willow_pink", 4)
    measured = compiled + cirq.Moment(cirq.measure(*ring, key="z"))
    dev.validate_circuit(measured)
    assert {type(op.gate) for op in compiled.all_operations() if len(op.qubits) == 2} == {cirq.CZPowGate}
    np.testing.assert_allclose(_z(compiled, ring), _z(_ansatz_on(ring, 1), ring), atol=1e-6)
    # the only two-qubit gate of willow_pink is CZ: √iSWAP does not validate
    sqrt_iswap = cirq.optimize_for_target_gateset(_ansatz_on(ring, 1), gateset=cirq.SqrtIswapTargetGateset())
    with pytest.raises(ValueError, match="not supported"):
        dev.validate_circuit(sqrt_iswap)
    with pytest.raises(ValueError):
        dev.validate_circuit(cirq.Circuit(cirq.X(cirq.GridQubit(30, 30))))
    # the reset entry cirq-google 1.5 cannot parse becomes the noise model's reset time
    assert processor("willow_pink").noise_properties.gate_times_ns[cirq.ResetChannel] == 160.0
    assert processor("willow_pink").calibration.timestamp == 1723795877630


def test_unknown_processor_says_which_exist() -> None:
    # the name is checked once, where the processor object is built; everything else takes the object
    with pytest.raises(ConfigError, match=r"'sycamore'.*willow_pink"):
        processor("sycamore")
    with pytest.raises(ConfigError, match="unknown processor"):
        processor("sycamore")
    with pytest.raises(ConfigError, match="cpu_threads"):
        samplers.virtual_sampler(processor("rainbow"), seed=0, cpu_threads=0)


# ---------------------------------------------------------------------------- gate sets and noise


@pytest.mark.parametrize("name", PROCESSORS)
def test_gateset_gates_carry_calibrated_two_qubit_noise(name: str) -> None:
    compiled, ring = _compiled(name, 4)
    processor(name).device.validate_circuit(compiled + cirq.Moment(cirq.measure(*ring, key="z")))
    two_qubit = [op for op in compiled.all_operations() if len(op.qubits) == 2]
    assert len(two_qubit) == (8 if name == "willow_pink" else 16)  # a CNOT is one CZ or two √iSWAPs
    props = processor(name).noise_properties
    for op in two_qubit:  # the calibration knows this gate's error on this coupler
        assert cirq.OpIdentifier(type(op.gate), *op.qubits) in props.gate_pauli_errors, op
    noisy = cirq.Circuit(noise_model(processor(name)).noisy_moments(compiled, sorted(compiled.all_qubits())))
    noise_pairs = {  # the compiled circuit has neither: every such operation is noise
        frozenset(op.qubits)
        for op in noisy.all_operations()
        if isinstance(op.gate, cirq.DepolarizingChannel | cirq.PhasedFSimGate) and len(op.qubits) == 2
    }
    assert {frozenset(op.qubits) for op in two_qubit} <= noise_pairs


@pytest.mark.parametrize("name", PROCESSORS)
def test_noise_model_changes_z(name: str) -> None:
    model = noise_model(processor(name))
    assert isinstance(model, cirq.NoiseModel) and noise_model(processor(name)) is model
    ring = _ring(processor(name).device, 2)
    circuit = cirq.optimize_for_target_gateset(_ansatz_on(ring, 2, seed=3), gateset=processor(name).gateset)
    ideal, noisy = _z(circuit, ring), _z(circuit, ring, model)
    assert np.max(np.abs(noisy - ideal)) > 1e-3
    assert np.all(np.abs(noisy) <= 1 + 1e-9)


# ---------------------------------------------------------------------------- samplers


@pytest.mark.parametrize("name", ["rainbow", "willow_pink"])
def test_virtual_sampler_validates_then_samples_noiselessly(name: str) -> None:
    sampler = samplers.virtual_sampler(processor(name), seed=1, cpu_threads=1)
    assert isinstance(sampler, cirq.Sampler)
    a, b = _ring(processor(name).device, 2)[:2]
    off_device = cirq.GridQubit(40, 40)
    with pytest.raises(ValueError):
        sampler.run(cirq.Circuit(cirq.X(off_device), cirq.measure(off_device, key="z")), repetitions=2)
    with pytest.raises(RuntimeError, match="measure"):  # the Engine runs nothing without a measurement
        sampler.run(cirq.Circuit(cirq.X(a)), repetitions=2)
    valid = cirq.Circuit(cirq.X(a), cirq.measure(a, b, key="z"))
    bits = sampler.run(valid, repetitions=50).measurements["z"]
    assert bits.shape == (50, 2)
    np.testing.assert_array_equal(bits, np.tile([1, 0], (50, 1)))


def test_noisy_qvm_sampler_is_seeded_and_noisy() -> None:
    name = "willow_pink"
    a, b = _ring(processor(name).device, 2)[:2]
    circuit = cirq.Circuit(cirq.H(a), cirq.X(b), cirq.measure(a, b, key="z"))

    def bits(seed: int) -> np.ndarray:
        sampler = samplers.noisy_qvm_sampler(processor(name), seed=seed, cpu_threads=1)
        return sampler.run(circuit, repetitions=400).measurements["z"]

    first = bits(7)
    np.testing.assert_array_equal(first, bits(7))
    assert not np.array_equal(first, bits(8))
    assert 0.4 < first[:, 0].mean() < 0.6
    assert 0 < np.sum(first[:, 1] == 0) < 40  # b is |1>: readout error and T1 flip a few shots
    sampler = samplers.noisy_qvm_sampler(processor("rainbow"), seed=0, cpu_threads=1)
    assert sampler.processor.get_current_calibration().timestamp == 1637058415838


# ---------------------------------------------------------------------------- simple noise model


def _rho(model: cirq.NoiseModel, circuit: cirq.Circuit, qubits: list[cirq.LineQubit]) -> np.ndarray:
    return (
        cirq.DensityMatrixSimulator(dtype=np.complex128, noise=model)
        .simulate(circuit, qubit_order=qubits)
        .final_density_matrix
    )


def test_simple_noise_model_matches_hand_computed_density_matrices() -> None:
    a, b = cirq.LineQubit.range(2)
    p, gamma, e = 0.06, 0.1, 0.05
    # |1> after X: depolarizing flips it with probability 2p/3, then damping decays it with gamma
    model = noise.simple_noise_model(p, gamma, 0.0)
    assert model is not None
    rho = _rho(model, cirq.Circuit(cirq.X(a)), [a])
    p1 = (1 - 2 * p / 3) * (1 - gamma)
    np.testing.assert_allclose(rho, np.diag([1 - p1, p1]), atol=1e-7)
    # two-qubit gate: the two-qubit depolarizing channel (each of the 15 Paulis with p/15); the idle
    # qubit b of the first moment gets no gate noise
    model = noise.simple_noise_model(p, 0.0, 0.0)
    assert model is not None
    rho = _rho(model, cirq.Circuit(cirq.X(a), cirq.CNOT(a, b)), [a, b])
    flip = 2 * p / 3
    p11 = (1 - flip) * (1 - 4 * p / 5) + flip * 4 * p / 15  # |11> kept (3 of 15 Paulis) or |00> -> |11> (4)
    p00 = flip * (1 - 4 * p / 5) + (1 - flip) * 4 * p / 15
    p10 = p01 = (1 - flip) * 4 * p / 15 + flip * 4 * p / 15  # one qubit flipped (4 of 15 Paulis each)
    np.testing.assert_allclose(np.real(np.diag(rho)), [p00, p01, p10, p11], atol=1e-7)
    # read-out: a bit flip before the measurement, which itself gets no depolarizing
    model = noise.simple_noise_model(p, gamma, e)
    assert model is not None
    circuit = cirq.Circuit(cirq.X(a), cirq.measure(a, key="z"))
    noisy = cirq.Circuit(model.noisy_moments(circuit, [a]))
    (m_index,) = [i for i, m in enumerate(noisy) if any(cirq.is_measurement(op) for op in m)]
    assert noisy[m_index - 1].operations == (cirq.bit_flip(e).on(a),)
    assert not any(isinstance(op.gate, cirq.DepolarizingChannel) for m in noisy[m_index:] for op in m)
    before = cirq.Circuit(noisy[:m_index])
    p1 = (1 - 2 * p / 3) * (1 - gamma)
    read1 = p1 * (1 - e) + (1 - p1) * e
    np.testing.assert_allclose(np.real(np.diag(_rho(cirq.NO_NOISE, before, [a]))), [1 - read1, read1], atol=1e-7)


def test_simple_noise_model_runs_on_qsim_and_density_matrix() -> None:
    import qsimcirq

    a, b = cirq.LineQubit.range(2)
    e = 0.1
    model = noise.simple_noise_model(0.0, 0.0, e)
    assert model is not None
    circuit = cirq.Circuit(cirq.X(a), cirq.CNOT(a, b), cirq.measure(a, b, key="z"))
    for sim in (qsimcirq.QSimSimulator(seed=3, noise=model), cirq.DensityMatrixSimulator(seed=3, noise=model)):
        bits = sim.run(circuit, repetitions=2000).measurements["z"]
        assert abs(np.mean(bits == 0) - e) < 0.025, type(sim).__name__
    depolarized = noise.simple_noise_model(0.3, 0.2, 0.0)
    bits = qsimcirq.QSimSimulator(seed=3, noise=depolarized).run(circuit, repetitions=500).measurements["z"]
    assert 0.05 < np.mean(bits == 0) < 0.6


def test_simple_noise_model_validates_rates() -> None:
    assert noise.simple_noise_model(0, 0, 0) is None
    assert noise.simple_noise_model(0.01, 0, 0) == noise.SimpleNoiseModel(0.01, 0.0, 0.0)
    for bad in (-0.1, 1.0, 1.5, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=r"depolarizing=.*\[0, 1\)"):
            noise.simple_noise_model(bad, 0, 0)
    with pytest.raises(ConfigError, match="readout_error"):
        noise.simple_noise_model(0, 0, 1.0)
    with pytest.raises(ConfigError, match="amplitude_damping"):
        noise.simple_noise_model(0, "0.1", 0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="amplitude_damping"):
        noise.simple_noise_model(0, True, 0)
