"""The hardware path (qmu_core.hardware): resolved circuits, device compilation, sampling, outputs.

The reference numbers come from a real `QNN` (TFQ) with its initial weights, which stand in for
trained ones: the hardware path must reproduce the model's exact ⟨Z⟩ and probabilities.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import cirq
import numpy as np
import pandas as pd
import pytest

from qmu_core.config import ModelConfig
from qmu_core.errors import ArtifactError, ConfigError
from qmu_core.hardware import layout, samplers, storage
from qmu_core.hardware import prepare as hp
from qmu_core.hardware import sampling as hs
from qmu_core.hardware.devices import processor
from qmu_core.qnn import circuits
from tests.support import random_inputs

CLASSES = [0, 1, 4]
RECORDS = 4


def _z_exact(circuit: cirq.Circuit, qubit_order: tuple[cirq.Qid, ...] | list[Any]) -> np.ndarray:
    """⟨Z_i⟩ of a circuit's final state (terminal measurements dropped), qubits in `qubit_order`."""
    bare = cirq.drop_terminal_measurements(circuit) if circuit.has_measurements() else circuit
    state = cirq.Simulator(dtype=np.complex128).simulate(bare, qubit_order=list(qubit_order)).final_state_vector
    return (np.abs(state) ** 2) @ circuits.z_signs(len(qubit_order)).astype(np.float64)


class Case:
    """A QNN (initial weights as 'trained' ones), its weights table, records and exact outputs."""

    def __init__(self, **kw: Any) -> None:
        from qmu_core.qnn.models import build_model

        self.model = ModelConfig(n_qubits=8, layers=2, backend="tfq", **kw)
        self.qnn = build_model(self.model, n_classes=len(CLASSES), image_side=8, seed=3)
        self.weights = self.qnn.weights_frame("m-test")
        self.x = random_inputs(self.model, RECORDS, seed=5)
        self.z = self.qnn.predict_expectations(self.x).numpy().astype(np.float64)
        self.rows = pd.DataFrame(
            {
                "sample_id": np.arange(100, 100 + RECORDS, dtype=np.int64),
                "label": np.array(CLASSES * 2, dtype=np.int64)[:RECORDS],
                "role": ["target_train", "target_train", "target_holdout", "target_holdout"],
                "is_forget": [True, False, False, False],
                "x": list(self.x),
            }
        )
        self.resolved = hp.resolved_circuits(self.weights, self.x, self.model)


@pytest.fixture(scope="module")
def angle() -> Case:
    return Case(encoding="angle")


@pytest.fixture(scope="module")
def amplitude() -> Case:
    return Case(encoding="amplitude")


@pytest.fixture(scope="module")
def rainbow(angle: Case) -> hp.Prepared:
    return hp.prepare(angle.resolved, target=processor("rainbow"))


@pytest.mark.parametrize("name", ["angle", "amplitude"])
def test_resolved_circuits_reproduce_the_models_z(name: str, request: pytest.FixtureRequest) -> None:
    case: Case = request.getfixturevalue(name)
    assert len(case.resolved) == RECORDS
    qs = circuits.qubits(case.model.n_qubits)
    for circuit, z in zip(case.resolved, case.z, strict=True):
        assert not cirq.is_parameterized(circuit) and not circuit.has_measurements()
        np.testing.assert_allclose(_z_exact(circuit, qs), z, atol=2e-5)


def test_reupload_binds_every_layers_inputs() -> None:
    model = ModelConfig(n_qubits=3, layers=2, reupload=True)
    rng = np.random.default_rng(0)
    weights = pd.DataFrame({"variable": ["theta"], "shape": [[18]], "values": [rng.normal(size=18)]})
    (circuit,) = hp.resolved_circuits(weights, rng.uniform(0, np.pi, size=(1, 3)), model)
    assert not cirq.is_parameterized(circuit)
    assert sum(1 for op in circuit.all_operations() if isinstance(op.gate, cirq.Ry)) == 6


def test_rainbow_circuit_validates_and_keeps_z(angle: Case, rainbow: hp.Prepared) -> None:
    dev = processor("rainbow").device
    ring = rainbow.qubits
    assert len(set(ring)) == 8 and all(isinstance(q, cirq.GridQubit) for q in ring)
    assert all(ring[i].is_adjacent(ring[(i + 1) % 8]) for i in range(8))  # a ring of couplers
    for logical, compiled in zip(angle.resolved, rainbow.circuits, strict=True):
        dev.validate_circuit(compiled)
        assert compiled.are_all_measurements_terminal()
        (readout,) = [op for op in compiled.all_operations() if cirq.is_measurement(op)]
        assert readout.qubits == ring and cirq.measurement_key_name(readout) == "z"
        assert compiled.all_qubits() == set(ring)
        z_logical = _z_exact(logical, circuits.qubits(8))
        np.testing.assert_allclose(_z_exact(compiled, ring), z_logical, atol=1e-6)
    # 8 CNOTs per layer become 2 √iSWAPs each
    stats = rainbow.stats[0]
    assert (stats.two_qubit_before, stats.two_qubit_after) == (16, 32)
    assert stats.depth_after > stats.depth_before
    assert rainbow.summary()["two_qubit_after"] == 32.0


def test_device_ring_and_its_errors() -> None:
    dev = processor("weber").device
    ring = layout.device_ring(dev, 12)
    assert len(set(ring)) == 12 and all(ring[i].is_adjacent(ring[(i + 1) % 12]) for i in range(12))
    with pytest.raises(ConfigError, match="no ring"):
        layout.device_ring(dev, 7)
    with pytest.raises(ConfigError, match="Unknown hardware target"):
        processor("sycamore-x")


def test_amplitude_on_a_device_is_routed() -> None:
    model = ModelConfig(n_qubits=4, layers=1, encoding="amplitude")
    rng = np.random.default_rng(2)
    weights = pd.DataFrame({"variable": ["theta"], "shape": [[12]], "values": [rng.normal(size=12)]})
    (logical,) = hp.resolved_circuits(weights, rng.normal(size=(1, 16)), model)
    with pytest.raises(ConfigError, match="not coupled on rainbow"):
        hp.prepare([logical], target=processor("rainbow"), route=False)
    prepared = hp.prepare([logical], target=processor("rainbow"))
    processor("rainbow").device.validate_circuit(prepared.circuits[0])
    assert prepared.stats[0].two_qubit_after > 2 * prepared.stats[0].two_qubit_before  # SWAPs added
    np.testing.assert_allclose(
        _z_exact(prepared.circuits[0], prepared.qubits), _z_exact(logical, circuits.qubits(4)), atol=1e-6
    )


def test_qsim_sampling_matches_exact_z(angle: Case, rainbow: hp.Prepared) -> None:
    # 32 comparisons at 3 standard errors: one in ~10 seeds has a >3σ qubit, so the seeds are fixed
    shots = 20_000
    local = hp.prepare(angle.resolved[:2], target=None)
    assert local.qubits == tuple(circuits.qubits(8))
    for prepared, seed in ((local, 11), (hp.Prepared(rainbow.circuits[:2], rainbow.qubits, "rainbow"), 13)):
        bits = hs.run_circuits(prepared.circuits, samplers.qsim_sampler(seed, cpu_threads=2), shots, batch=1)
        assert bits.shape == (2, shots, 8) and bits.dtype == np.uint8
        z, stderr = hs.z_from_bits(bits)
        exact = angle.z[:2]
        bound = 3 * np.sqrt(np.clip(1 - exact**2, 1 / shots, None) / shots)
        assert np.all(np.abs(z - exact) <= bound), np.abs(z - exact) / bound
        np.testing.assert_allclose(stderr, np.sqrt((1 - z**2) / shots))


def test_qsim_sampler_is_seeded(angle: Case) -> None:
    local = hp.prepare(angle.resolved[:1], target=None)
    a, b = (hs.run_circuits(local.circuits, samplers.qsim_sampler(7, cpu_threads=1), 50) for _ in range(2))
    np.testing.assert_array_equal(a, b)


class _Flaky(cirq.Sampler):
    """Raises `error` on the first `fails` run_batch calls, then samples with cirq.Simulator."""

    def __init__(self, error: type[Exception], fails: int) -> None:
        self.error, self.fails, self.calls = error, fails, 0
        self.inner = cirq.Simulator(seed=0)

    def run_sweep(self, program: Any, params: Any, repetitions: int = 1) -> Any:
        return self.inner.run_sweep(program, params, repetitions)

    def run_batch(self, programs: Any, params_list: Any = None, repetitions: Any = 1) -> Any:
        self.calls += 1
        if self.calls <= self.fails:
            raise self.error("boom")
        return super().run_batch(programs, params_list, repetitions)


def test_run_circuits_retries_transient_errors_only() -> None:
    q = cirq.LineQubit.range(2)
    circuit = cirq.Circuit(cirq.X(q[1]), cirq.measure(*q, key="z"))
    flaky = _Flaky(TimeoutError, fails=2)
    bits = hs.run_circuits([circuit] * 3, flaky, 5, batch=2, retries=2, backoff=0)
    assert bits.shape == (3, 5, 2) and (bits[..., 0] == 0).all() and (bits[..., 1] == 1).all()
    assert flaky.calls == 4  # two failures, then two chunks
    with pytest.raises(TimeoutError):
        hs.run_circuits([circuit], _Flaky(TimeoutError, fails=3), 5, retries=2, backoff=0)
    broken = _Flaky(ValueError, fails=1)
    with pytest.raises(ValueError):
        hs.run_circuits([circuit], broken, 5, retries=2, backoff=0)
    assert broken.calls == 1


def test_to_frame_round_trip(rainbow: hp.Prepared) -> None:
    frame = storage.to_frame(rainbow, [10, 11, 12, 13])
    assert list(frame["sample_id"]) == [10, 11, 12, 13] and set(frame["target"]) == {"rainbow"}
    back = storage.from_frame(frame)
    assert back.circuits == rainbow.circuits and back.qubits == rainbow.qubits
    assert back.target == "rainbow" and back.stats == rainbow.stats


def test_stored_circuits_are_cirq_json_and_share_their_moments(rainbow: hp.Prepared) -> None:
    # the text is Cirq's own (any Cirq reader reads it), written moment by moment
    frame = storage.to_frame(rainbow, [10, 11, 12, 13])
    assert list(frame["circuit_json"]) == [cirq.to_json(c, indent=None) for c in rainbow.circuits]
    assert [cirq.read_json(json_text=t) for t in frame["circuit_json"]] == rainbow.circuits
    # tables written by cirq.to_json's default (indent=2) read the same
    old = frame.assign(circuit_json=[cirq.to_json(c) for c in rainbow.circuits])
    back = storage.from_frame(old)
    assert back.circuits == rainbow.circuits
    # equal moments come back as one object (the emulator then knows them by identity)
    first, second = back.circuits[0], back.circuits[1]
    shared = sum(a is b for a, b in zip(first.moments, second.moments, strict=True))
    assert shared == sum(a == b for a, b in zip(first.moments, second.moments, strict=True)) > 0


def test_stored_circuit_that_is_not_a_circuit_is_refused() -> None:
    with pytest.raises(ArtifactError, match="not a cirq.Circuit"):
        storage.read_circuit(cirq.to_json(cirq.X(cirq.LineQubit(0))))
    with pytest.raises(ArtifactError, match="where a cirq.Moment belongs"):
        storage.read_circuit('{"cirq_type": "Circuit", "moments": [{"cirq_type": "LineQubit", "x": 0}]}')


@pytest.mark.parametrize("loss", ["bce_sum", "cross_entropy"])
def test_outputs_from_exact_z_match_the_models_outputs(angle: Case, loss: str) -> None:
    from qmu_core.artifacts import SCHEMAS
    from qmu_core.qnn.training import predict_outputs

    expected = predict_outputs(
        angle.qnn, angle.rows, model_cfg=angle.model, classes=CLASSES, loss=loss, model_id="m-test"
    )
    z = np.array([_z_exact(c, circuits.qubits(8)) for c in angle.resolved])
    got = hs.outputs_from_z(z, angle.weights, angle.rows, classes=CLASSES, loss=loss, model_id="m-test")
    assert list(got.columns) == SCHEMAS["outputs"].names
    np.testing.assert_allclose(np.stack(got["prob"]), np.stack(expected["prob"]), atol=1e-5)
    np.testing.assert_allclose(got["loss"], expected["loss"], rtol=1e-4, atol=1e-5)
    assert list(got["correct"]) == list(expected["correct"])
    for col in ("model_id", "sample_id", "role", "label", "is_forget"):
        assert list(got[col]) == list(expected[col])


def test_hqnn_is_refused() -> None:
    model = ModelConfig(kind="hqnn", n_qubits=4, layers=1)
    with pytest.raises(ConfigError, match="CNN front end runs on the CPU"):
        hp.resolved_circuits(pd.DataFrame(), np.zeros((1, 64)), model)


def test_hardware_path_imports_no_tensorflow() -> None:
    code = (
        "import sys, qmu_core.hardware.prepare, qmu_core.hardware.sampling, qmu_core.hardware.samplers, "
        "qmu_core.hardware.evaluate, qmu_core.hardware.report; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_quantum', 'tf_keras') "
        "or m in ('qmu_core._tf', 'qmu_core.qnn.models', 'qmu_core.qnn.training', 'qmu_core.jobs')); "
        "print(bad); sys.exit(bool(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("reupload", [False, True])
def test_prepare_model_compiles_once_and_keeps_every_records_z(reupload: bool) -> None:
    """The fast path (fixed parts compiled once, inputs as PhasedXZ moments) equals the model."""
    model = ModelConfig(n_qubits=4, layers=2, reupload=reupload)
    rng = np.random.default_rng(1)
    n_theta = 3 * 4 * 2
    weights = pd.DataFrame({"variable": ["theta"], "shape": [[n_theta]], "values": [rng.normal(size=n_theta)]})
    x = rng.uniform(0, np.pi, size=(3, 4))
    logical = hp.resolved_circuits(weights, x, model)
    seen: list[tuple[int, int]] = []
    fast = hp.prepare_model(weights, x, model, target=processor("rainbow"), progress=lambda k, n: seen.append((k, n)))
    assert seen[-1] == (3, 3)
    dev = processor("rainbow").device
    for circuit, compiled in zip(logical, fast.circuits, strict=True):
        dev.validate_circuit(compiled)
        np.testing.assert_allclose(_z_exact(compiled, fast.qubits), _z_exact(circuit, circuits.qubits(4)), atol=1e-5)
    # the fixed part is shared: every record's circuit has the same moments after its inputs
    assert fast.circuits[0][-5:] == fast.circuits[1][-5:]
    assert fast.stats[0].two_qubit_before == 8 and fast.stats[0].two_qubit_after == 16


def test_the_device_leak_preset_is_a_circuit_willow_pink_runs() -> None:
    """`device_leak` (issue 31): at most 12 qubits, angle encoding, 80 CZs on a ring of willow_pink's couplers."""
    from qmu_core.config import preset

    model = preset("device_leak").model
    assert model.kind == "basic_qnn" and model.encoding == "angle" and model.reupload and model.n_qubits <= 12
    rng = np.random.default_rng(0)
    n = 3 * model.n_qubits * model.layers
    weights = pd.DataFrame({"variable": ["theta"], "shape": [[n]], "values": [rng.normal(size=n)]})
    (circuit,) = hp.resolved_circuits(weights, rng.uniform(0, np.pi, size=(1, model.n_qubits)), model)
    prepared = hp.prepare([circuit], target=processor("willow_pink"))
    processor("willow_pink").device.validate_circuit(prepared.circuits[0])
    two_qubit = [op for op in prepared.circuits[0].all_operations() if len(op.qubits) == 2]
    assert len(two_qubit) == model.n_qubits * model.layers  # one CZ per ring edge and layer, no routing
    np.testing.assert_allclose(
        _z_exact(prepared.circuits[0], prepared.qubits), _z_exact(circuit, circuits.qubits(model.n_qubits)), atol=1e-5
    )
