"""The sampler seam (qmu_core.hardware.samplers, engine).

Config kinds, what each compiles for, and the Quantum Engine adapter's contract with the
Engine API (no network).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time

import cirq
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from qmu_core.config import (
    SAMPLER_CLASSES,
    SAMPLER_KINDS,
    EmulatorSampler,
    GoogleEngineSampler,
    GoogleNoisyQVMSampler,
    GoogleVirtualSampler,
    HardwareConfig,
    ModelConfig,
    QMUConfig,
    QsimNoisySampler,
    QsimSampler,
)
from qmu_core.errors import ConfigError, QMUError
from qmu_core.hardware import engine, evaluate, samplers, sampling, storage
from qmu_core.hardware.emulator import DensityMatrixEmulator


def _weights(model: ModelConfig, n_classes: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_theta = 3 * model.n_qubits * model.layers
    return pd.DataFrame(
        {
            "variable": ["theta", "head_w", "head_b"],
            "shape": [[n_theta], [model.n_qubits, n_classes], [n_classes]],
            "values": [rng.normal(size=n_theta), rng.normal(size=model.n_qubits * n_classes), np.zeros(n_classes)],
        }
    )


MODEL = ModelConfig(n_qubits=4, layers=1)


def test_every_kind_parses_from_the_form_and_bad_kinds_say_which_exist() -> None:
    for kind in SAMPLER_KINDS:
        cfg = QMUConfig.model_validate({"hardware": {"sampler": {"kind": kind}}})
        assert cfg.hardware.sampler.kind == kind
    assert isinstance(HardwareConfig().sampler, EmulatorSampler)  # the default for noisy studies
    with pytest.raises(ValidationError, match="qsim_noisy"):
        QMUConfig.model_validate({"hardware": {"sampler": {"kind": "ibm"}}})
    with pytest.raises(ValidationError, match="run_name"):
        GoogleEngineSampler(run_name="r1")
    with pytest.raises(ValidationError, match="distinct"):
        HardwareConfig(shots=(10, 10))
    schema = QMUConfig.model_json_schema()
    sampler = schema["$defs"]["HardwareConfig"]["properties"]["sampler"]
    assert len(sampler["anyOf"]) == len(SAMPLER_KINDS)  # the Prefect form offers every kind


def test_targets_and_noise_of_each_kind() -> None:
    assert samplers.resolve(QsimSampler()).target is None
    assert samplers.resolve(QsimNoisySampler()).target is None
    assert samplers.resolve(GoogleVirtualSampler(processor="weber")).target == "weber"
    assert samplers.resolve(GoogleNoisyQVMSampler(processor="rainbow")).target == "rainbow"
    assert samplers.resolve(EmulatorSampler()).target == "willow_pink"
    assert samplers.resolve(EmulatorSampler(noise="qsim_noisy")).target is None
    with pytest.raises(ConfigError, match="device spec"):
        samplers.resolve(GoogleEngineSampler(processor_id="sycamore-x"))
    assert samplers.resolve(QsimSampler()).noise_model() is None
    assert samplers.resolve(EmulatorSampler(noise="none")).noise_model() is None
    assert isinstance(samplers.resolve(EmulatorSampler()).noise_model(), cirq.NoiseModel)
    assert isinstance(samplers.resolve(QsimNoisySampler()).noise_model(), cirq.NoiseModel)


def test_each_kind_is_decided_once_and_says_what_it_is() -> None:
    kinds = {kind: samplers.resolve(SAMPLER_CLASSES[kind]()) for kind in SAMPLER_KINDS}  # type: ignore[arg-type]
    assert {k: v.name for k, v in kinds.items()} == {k: k for k in SAMPLER_KINDS}
    assert {k: v.describes for k, v in kinds.items()} == {
        "qsim": "qsim",
        "qsim_noisy": "qsim_noisy",
        "google_virtual": "google_virtual (willow_pink)",
        "google_noisy_qvm": "google_noisy_qvm (willow_pink)",
        "google_engine": "google_engine (willow_pink)",
        "emulator": "emulator (willow_pink noise)",
    }
    assert samplers.resolve(EmulatorSampler(noise="qsim_noisy")).describes == "emulator (simple noise)"
    assert samplers.resolve(EmulatorSampler(noise="none")).describes == "emulator (noiseless)"
    assert [k for k, v in kinds.items() if v.draws_from_distribution] == ["emulator"]
    assert [k for k, v in kinds.items() if v.needs_project] == ["google_engine"]
    assert kinds["emulator"].processor is kinds["google_virtual"].processor  # one validated object per name


@pytest.mark.parametrize(
    "config",
    [QsimSampler(), QsimNoisySampler(), GoogleVirtualSampler(processor="rainbow"), EmulatorSampler(noise="none")],
    ids=lambda c: c.kind,
)
def test_each_sampler_measures_a_prepared_circuit(config: object) -> None:
    """Swap the sampler, nothing else: the same prepared circuits run through any kind."""
    records = pd.DataFrame({"sample_id": [5, 9], "x": list(np.random.default_rng(1).uniform(0, 3, size=(2, 4)))})
    frame = evaluate.prepare_records(_weights(MODEL), records, MODEL, samplers.resolve(config).processor)  # type: ignore[arg-type]
    sampler = samplers.build(config, seed=3, cpu_threads=1)  # type: ignore[arg-type]
    shots = evaluate.measure(frame, sampler, 64)
    bits = evaluate.bits_from_frame(shots, 4)
    assert bits.shape == (2, 64, 4) and set(np.unique(bits)) <= {0, 1}
    again = evaluate.measure(frame, samplers.build(config, seed=3, cpu_threads=1), 64)  # type: ignore[arg-type]
    np.testing.assert_array_equal(np.stack(again["shots"]), np.stack(shots["shots"]))  # seeded


def test_emulator_shots_drawn_from_the_exact_distribution_match_it() -> None:
    records = pd.DataFrame({"sample_id": [1, 2, 3], "x": list(np.random.default_rng(2).uniform(0, 3, size=(3, 4)))})
    frame = evaluate.prepare_records(_weights(MODEL), records, MODEL, None)
    dist = evaluate.exact_distribution(frame, None)
    z_exact = evaluate.z_from_distribution(dist, 4)
    exact_sv = np.stack(
        [
            np.abs(cirq.Simulator().simulate(cirq.drop_terminal_measurements(c)).final_state_vector) ** 2
            for c in storage.from_frame(frame).circuits
        ]
    )
    np.testing.assert_allclose(np.stack(dist["prob"]), exact_sv, atol=1e-5)
    shots = evaluate.measure(frame, None, 20000, distribution=dist, seed=4)
    z, stderr = sampling.z_from_bits(evaluate.bits_from_frame(shots, 4))
    assert np.all(np.abs(z - z_exact) <= 4 * np.maximum(stderr, 1e-3))
    assert isinstance(samplers.build(EmulatorSampler(noise="none"), seed=0), DensityMatrixEmulator)


class _Sent(Exception):
    """Raised by the recording client so nothing waits for results that will never come."""


class _RecordingEngineClient:
    """Stands in for `cirq_google.engine.engine_client.EngineClient`, the network boundary."""

    def __init__(self) -> None:
        self.calls: list[dict[str, object]] = []

    def run_job_over_stream(self, **kwargs: object) -> None:
        self.calls.append(kwargs)
        raise _Sent


def test_google_engine_adapter_hands_the_engine_api_the_processor_and_repetitions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cirq_google
    from cirq_google.api import v2

    monkeypatch.delenv(engine.PROJECT_ENV, raising=False)
    config = GoogleEngineSampler(processor_id="willow_pink")
    with pytest.raises(ConfigError, match="GOOGLE_CLOUD_PROJECT"):
        samplers.build(config, seed=0, project_id=engine.project_id_from_env())
    monkeypatch.setenv(engine.PROJECT_ENV, "qmu-contract-test")
    sampler = samplers.build(config, seed=0, project_id=engine.project_id_from_env())
    assert isinstance(sampler, cirq_google.ProcessorSampler)
    recorder = _RecordingEngineClient()
    sampler.processor.context.client = recorder  # type: ignore[attr-defined]

    records = pd.DataFrame({"sample_id": [7], "x": [np.array([0.1, 0.2, 0.3, 0.4])]})
    frame = evaluate.prepare_records(_weights(MODEL), records, MODEL, samplers.resolve(config).processor)
    circuit = storage.from_frame(frame).circuits[0]
    with pytest.raises(_Sent):
        sampling.run_circuits([circuit], sampler, repetitions=1234, retries=0)
    (call,) = recorder.calls
    assert call["processor_id"] == "willow_pink"
    assert call["project_id"] == "qmu-contract-test"
    context = v2.run_context_pb2.RunContext()
    call["run_context"].Unpack(context)  # type: ignore[attr-defined]
    assert [s.repetitions for s in context.parameter_sweeps] == [1234]
    program = v2.program_pb2.Program()
    call["code"].Unpack(program)  # type: ignore[attr-defined]
    sent = cirq_google.CIRCUIT_SERIALIZER.deserialize(program)  # the circuit as prepared (float32 angles)
    assert len(sent) == len(circuit) and sent.all_qubits() == circuit.all_qubits()
    bare = [cirq.drop_terminal_measurements(c) for c in (sent, circuit)]
    np.testing.assert_allclose(cirq.unitary(bare[0]), cirq.unitary(bare[1]), atol=1e-5)
    assert "qmu-contract-test" not in frame.to_json()  # the project never reaches an artifact


class _SilentEngineClient:
    """An Engine client whose call never answers, like a network that drops every packet."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()

    def run_job_over_stream(self, **kwargs: object) -> None:
        self.calls += 1
        self.release.wait(600)  # until the test ends: the deadline must not wait for it
        raise _Sent


def _engine_circuit(config: GoogleEngineSampler) -> cirq.Circuit:
    records = pd.DataFrame({"sample_id": [7], "x": [np.array([0.1, 0.2, 0.3, 0.4])]})
    frame = evaluate.prepare_records(_weights(MODEL), records, MODEL, samplers.resolve(config).processor)
    return storage.from_frame(frame).circuits[0]


def test_an_engine_call_without_an_answer_fails_within_the_deadline() -> None:
    """No network: the Engine call is given up after `timeout_s` with the processor, the endpoint and the likely cause.

    It is not retried, and the blocked call does not keep the caller (issue 25, item 11).
    """
    config = GoogleEngineSampler(processor_id="willow_pink")
    sampler = samplers.build(config, seed=0, project_id="qmu-deadline-test", timeout_s=2)
    silent = _SilentEngineClient()
    sampler.processor.context.client = silent  # type: ignore[attr-defined]
    circuit = _engine_circuit(config)
    started = time.monotonic()
    try:
        with pytest.raises(QMUError) as raised:
            sampling.run_circuits([circuit], sampler, repetitions=10)
    finally:
        silent.release.set()
    took = time.monotonic() - started
    print(f"\nthe silent Engine call was given up after {took:.1f} s: {raised.value}")
    assert took < 2 + 10
    message = str(raised.value)
    assert "willow_pink" in message and "quantum.googleapis.com" in message
    assert "no answer within 2 s" in message and "network" in message
    assert silent.calls == 1  # a deadline is not a transient error: not sent again


def test_a_stopped_run_abandons_a_waiting_engine_call_at_once() -> None:
    """SIGTERM or Ctrl-C stop a run through `workers.cancel` (qmu_prefect.runner).

    A caller waiting for the Engine gives up within a fraction of a second, not after `timeout_s`.
    """
    from qmu_core import workers

    config = GoogleEngineSampler(processor_id="willow_pink")
    sampler = samplers.build(config, seed=0, project_id="qmu-deadline-test", timeout_s=60)
    silent = _SilentEngineClient()
    sampler.processor.context.client = silent  # type: ignore[attr-defined]
    circuit = _engine_circuit(config)
    timer = threading.Timer(0.5, workers.cancel)
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(workers.Cancelled, match="abandoned"):
            sampling.run_circuits([circuit], sampler, repetitions=10)
    finally:
        timer.cancel()
        workers.resume()
        silent.release.set()
    took = time.monotonic() - started
    print(f"\nabandoned {took - 0.5:.2f} s after the run was stopped")
    assert took < 0.5 + 2


def test_an_engine_endpoint_that_never_answers_fails_within_the_deadline() -> None:
    """The real gRPC client pointed at a local port that accepts connections and never answers."""
    import google.auth.credentials

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    endpoint = f"127.0.0.1:{listener.getsockname()[1]}"
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    config = GoogleEngineSampler(processor_id="willow_pink")
    service_args = {
        "client_options": {"api_endpoint": endpoint},
        "credentials": google.auth.credentials.AnonymousCredentials(),
    }
    sampler = samplers.build(config, seed=0, project_id="qmu-deadline-test", timeout_s=3, service_args=service_args)
    started = time.monotonic()
    try:
        with pytest.raises(QMUError, match=re.escape(endpoint)) as raised:
            sampling.run_circuits([_engine_circuit(config)], sampler, repetitions=10)
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
    took = time.monotonic() - started
    print(f"\nthe silent endpoint was given up after {took:.1f} s: {raised.value}")
    assert took < 3 + 10
    assert "no answer within 3 s" in str(raised.value)


def test_hardware_timeout_is_a_strict_positive_number() -> None:
    assert HardwareConfig().timeout_s == 60
    assert HardwareConfig(timeout_s=2.5).timeout_s == 2.5
    for bad in (0, "60", True):
        with pytest.raises(ValidationError, match="timeout_s"):
            HardwareConfig(timeout_s=bad)


@pytest.mark.hardware
def test_real_engine_round_trip() -> None:  # pragma: no cover - needs credentials and a processor
    """A few shots on the real device; run with `pytest -m hardware` and GOOGLE_CLOUD_PROJECT set."""
    project = engine.project_id_from_env()
    if not project:
        pytest.skip("GOOGLE_CLOUD_PROJECT is not set")
    config = GoogleEngineSampler(processor_id="willow_pink")
    records = pd.DataFrame({"sample_id": [7], "x": [np.array([0.1, 0.2, 0.3, 0.4])]})
    frame = evaluate.prepare_records(_weights(MODEL), records, MODEL, samplers.resolve(config).processor)
    shots = evaluate.measure(frame, samplers.build(config, seed=0, project_id=project), 100)
    assert evaluate.bits_from_frame(shots, 4).shape == (1, 100, 4)


def test_set_switches_the_sampler_kind_with_that_kinds_defaults() -> None:
    from qmu_core.config import preset
    from qmu_core.config.overrides import apply_overrides

    base = preset("tiny")
    cfg = apply_overrides(base, ["hardware.sampler.kind=google_noisy_qvm", "hardware.sampler.processor=weber"])
    assert cfg.hardware.sampler == GoogleNoisyQVMSampler(processor="weber")
    cfg = apply_overrides(base, ['hardware={"sampler": {"kind": "qsim"}, "repetitions": 10}'])
    assert cfg.hardware.sampler == QsimSampler() and cfg.hardware.repetitions == 10
    cfg = apply_overrides(base, ["hardware.sampler.processor=weber"])  # same kind: merged
    assert cfg.hardware.sampler == EmulatorSampler(processor="weber")
    cfg = apply_overrides(base, ['model={"layers": 3}'])  # an ordinary section still merges
    assert cfg.model.layers == 3 and cfg.model.n_qubits == base.model.n_qubits
    with pytest.raises(ConfigError, match="expected tags"):
        apply_overrides(base, ["hardware.sampler.kind=ibm"])
