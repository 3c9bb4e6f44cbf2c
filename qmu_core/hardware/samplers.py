"""All sampler construction: what a ``hardware.sampler`` kind stands for, and its `cirq.Sampler`.

`resolve` is the one function in QMU that looks at which kind a sampler config is. It returns a
`SamplerKind` carrying what the rest of the hardware path needs to know about the kind, so no
caller asks again: the `Processor` the circuits compile for (None: LineQubits), the kind's
noise (`SamplerKind.noise_model`: the infinite-shot limit through the emulator's exact
distribution), whether shots are drawn from that distribution, whether it needs a Google Cloud
project, a one-line name for reports, and `SamplerKind.build`, the `cirq.Sampler` itself. Every
kind hands back a plain ``cirq.Sampler``, so `qmu_core.hardware.sampling.run_circuits` and
everything after it is the same for a simulator, a virtual processor and the real device:

========================  ================================================  ====================
kind                      sampler                                           circuits compiled for
========================  ================================================  ====================
``qsim``                  qsim state vector, seeded, ``cpu_threads``        LineQubits (none)
``qsim_noisy``            qsim trajectories under `simple_noise_model`      LineQubits (none)
``google_virtual``        the processor's noiseless virtual engine (qsim)   the processor
``google_noisy_qvm``      the noisy quantum virtual machine (calibration)   the processor
``google_engine``         the real Quantum Engine (`engine_sampler`)        the processor
``emulator``              `DensityMatrixEmulator` with any noise above      the processor, or none
========================  ================================================  ====================

The virtual processors (``google_virtual``, ``google_noisy_qvm``) are ``cirq_google.ProcessorSampler``
s of a ``SimulatedLocalProcessor`` inside a ``SimulatedLocalEngine``, backed by a seeded
``qsimcirq.QSimSimulator`` with ``cpu_threads`` set; each circuit is validated as Quantum Engine
would before it runs: device qubits, couplers and gates (``device.validate_circuit``),
serialisability, moment and repetition limits, at least one measurement, program size. The noisy
one carries the processor's calibrated noise (`qmu_core.hardware.noise.noise_model`) and median
calibration, like cirq-google's ``create_default_noisy_quantum_virtual_machine`` (which checks the
device only). The Engine's project id is never part of a config: the caller passes it from the
environment (`qmu_core.hardware.engine.project_id_from_env`, or a Prefect Secret in ``tasks/``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cirq
import cirq_google
import numpy as np
import qsimcirq

from qmu_core.config import (
    EmulatorSampler,
    GoogleEngineSampler,
    GoogleNoisyQVMSampler,
    GoogleVirtualSampler,
    QsimNoisySampler,
    QsimSampler,
    SamplerConfig,
)
from qmu_core.config.hardware import SAMPLERS
from qmu_core.errors import ConfigError
from qmu_core.hardware import engine
from qmu_core.hardware.devices import PROCESSORS, Processor, processor
from qmu_core.hardware.emulator import DensityMatrixEmulator
from qmu_core.hardware.noise import noise_model, simple_noise_model

__all__ = [
    "SamplerKind",
    "build",
    "engine_sampler",
    "noisy_qvm_sampler",
    "qsim_sampler",
    "qsim_simulator",
    "resolve",
    "threads",
    "virtual_sampler",
]


def threads(cpu_threads: int) -> int:
    """``cpu_threads``, or every core this process may use for 0."""
    return cpu_threads if cpu_threads > 0 else len(os.sched_getaffinity(0))


# ---------------------------------------------------------------------------- simulators


def qsim_simulator(seed: int, cpu_threads: int | None, noise: cirq.NoiseModel | None, what: str) -> Any:
    """A seeded `qsimcirq.QSimSimulator` with `cpu_threads` threads (None: every core) and `noise`.

    `what` names the caller in errors. The one place QMU builds a qsim simulator.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ConfigError(f"{what}: seed={seed!r} is not an integer; pass an int so runs repeat exactly.")
    n = cpu_threads if cpu_threads is not None else len(os.sched_getaffinity(0))
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise ConfigError(f"{what}: cpu_threads={cpu_threads!r}; qsim needs a whole number of threads >= 1.")
    options = qsimcirq.QSimOptions(cpu_threads=int(n))
    return qsimcirq.QSimSimulator(qsim_options=options, seed=int(seed), noise=noise)


def qsim_sampler(seed: int, cpu_threads: int | None = None, noise: cirq.NoiseModel | None = None) -> cirq.Sampler:
    """The qsimcirq simulator as a seeded sampler (`qsim_simulator`).

    Args:
        seed: Seed of the measurement (and noise) sampling: same seed and calls, same bits.
        cpu_threads: Threads of qsim; default every core this process may use.
        noise: A noise model (qsim then samples trajectories, one per shot), or None.
    """
    return qsim_simulator(seed, cpu_threads, noise, "qsim_sampler")


# ---------------------------------------------------------------------------- virtual processors


def _processor_sampler(proc: Processor, simulator: Any, calibration: Any | None) -> Any:
    from cirq_google.engine import engine_validator
    from cirq_google.engine.simulated_local_engine import SimulatedLocalEngine
    from cirq_google.engine.simulated_local_processor import SimulatedLocalProcessor

    calibrations = {} if calibration is None else {calibration.timestamp // 1000: calibration}
    local = SimulatedLocalProcessor(
        processor_id=proc.name,
        sampler=simulator,
        device=proc.device,
        validator=engine_validator.create_engine_validator(),
        program_validator=engine_validator.create_program_validator(),
        calibrations=calibrations,
        device_specification=proc.specification(),
    )
    SimulatedLocalEngine([local])  # sets processor.engine(), as the virtual engine factories do
    return local.get_sampler()


def virtual_sampler(proc: Processor, *, seed: int, cpu_threads: int | None = None) -> cirq.Sampler:
    """The noiseless virtual processor's sampler, backed by a seeded multi-threaded qsim.

    Like a processor of cirq-google's noiseless virtual engine: every circuit is validated as
    Quantum Engine would (device qubits, couplers and gates, serialisation, size limits, at least
    one measurement) and then simulated without noise. No calibration is attached (the processor
    is perfect); `Processor.calibration` has the real numbers.

    Args:
        proc: The processor.
        seed: Seed of qsim's measurement sampling (same seed and same calls: same bits).
        cpu_threads: qsim threads; default every core this process may use.

    Returns:
        A ``cirq_google.ProcessorSampler`` (a ``cirq.Sampler``).

    Raises:
        ConfigError: For a non-integer seed or fewer than one thread.
    """
    simulator = qsim_simulator(seed, cpu_threads, None, f"virtual_sampler({proc.name!r})")
    return _processor_sampler(proc, simulator, None)


def noisy_qvm_sampler(proc: Processor, *, seed: int, cpu_threads: int | None = None) -> cirq.Sampler:
    """The noisy quantum virtual machine of a processor: validated like Engine, calibrated noise.

    A seeded qsim with the processor's calibrated noise (`qmu_core.hardware.noise.noise_model`;
    qsim samples noise by trajectories: each repetition draws one), the device, the Engine's
    validators and the median calibration attached (``processor.get_current_calibration()``).

    Args:
        proc: The processor.
        seed: Seed of qsim's noise and measurement sampling (same seed and same calls: same bits).
        cpu_threads: qsim threads; default every core this process may use.

    Returns:
        A ``cirq_google.ProcessorSampler`` (a ``cirq.Sampler``).

    Raises:
        ConfigError: For a non-integer seed or fewer than one thread.
    """
    simulator = qsim_simulator(seed, cpu_threads, noise_model(proc), f"noisy_qvm_sampler({proc.name!r})")
    return _processor_sampler(proc, simulator, proc.calibration)


# ---------------------------------------------------------------------------- the real Engine


def engine_sampler(
    config: GoogleEngineSampler,
    *,
    project_id: str | None,
    timeout_s: float | None = None,
    service_args: dict[str, Any] | None = None,
) -> cirq.Sampler:
    """A `cirq_google.ProcessorSampler` on the real Quantum Engine (no network until it runs).

    Every call ends within `timeout_s` (`engine.EngineTimeout` otherwise; None:
    `engine.engine_timeout`'s, else `engine.DEFAULT_TIMEOUT_S`).

    Args:
        config: The ``google_engine`` sampler section.
        project_id: The Google Cloud project (from the environment).
        timeout_s: Seconds an Engine call may take.
        service_args: Options of the gRPC client (``client_options``, ``credentials``), for tests.

    Raises:
        ConfigError: Without a project id.
    """
    if not project_id:
        raise ConfigError(
            "hardware.sampler.kind='google_engine' needs a Google Cloud project, which QMU reads only from the "
            f"environment: set {engine.PROJECT_ENV}=<project> (or create the Prefect Secret block "
            "'qmu-google-cloud-project'), and authenticate with `gcloud auth application-default login`."
        )
    client = cirq_google.Engine(project_id=project_id, service_args=service_args)
    options = (service_args or {}).get("client_options") or {}
    endpoint = options.get("api_endpoint") if isinstance(options, dict) else getattr(options, "api_endpoint", None)
    return engine.EngineSampler(
        processor=client.get_processor(config.processor_id),
        run_name=config.run_name,
        device_config_name=config.device_config_name,
        timeout_s=engine.current_timeout_s() if timeout_s is None else timeout_s,
        endpoint=str(endpoint or engine.DEFAULT_ENDPOINT),
    )


def _engine_processor(config: GoogleEngineSampler) -> Processor:
    """The processor an Engine run compiles for: its id is free text in the config, checked here once."""
    try:
        return processor(config.processor_id)
    except ConfigError as exc:
        raise ConfigError(
            f"hardware.sampler.processor_id={config.processor_id!r}: QMU compiles for a processor whose device "
            f"spec it holds offline ({', '.join(PROCESSORS)}); pick one of those, or add the "
            "processor's device spec to qmu_core/hardware/data."
        ) from exc


# ---------------------------------------------------------------------------- the factory


@dataclass(frozen=True)
class BuildArgs:
    """What `SamplerKind.build` hands the kind's constructor (each kind uses what it needs)."""

    seed: int
    threads: int
    project_id: str | None = None
    timeout_s: float | None = None
    service_args: dict[str, Any] | None = None


def _noiseless() -> cirq.NoiseModel | None:
    return None


@dataclass(frozen=True)
class SamplerKind:
    """What a ``hardware.sampler`` config stands for (`resolve`), and how to build its sampler.

    Attributes:
        name: The kind (``hardware.sampler.kind``).
        describes: A one-line name for reports, e.g. ``emulator (willow_pink noise)`` (never a project id).
        processor: The processor the circuits compile for; None: LineQubits, no compilation.
        draws_from_distribution: Shots are drawn from the exact distribution under `noise_model`
            (the emulator) rather than run through the sampler again.
        needs_project: The sampler runs on the real Engine and needs a Google Cloud project.
    """

    name: str
    describes: str
    processor: Processor | None
    make: Callable[[BuildArgs], cirq.Sampler] = field(repr=False)
    noise: Callable[[], cirq.NoiseModel | None] = field(default=_noiseless, repr=False)
    draws_from_distribution: bool = False
    needs_project: bool = False

    @property
    def target(self) -> str | None:
        """The name of the processor the circuits compile for (None: LineQubits)."""
        return None if self.processor is None else self.processor.name

    def noise_model(self) -> cirq.NoiseModel | None:
        """The kind's noise: calibration noise, the simple rates, or None (noiseless or unknown)."""
        return self.noise()

    def build(
        self,
        *,
        seed: int,
        cpu_threads: int = 0,
        project_id: str | None = None,
        timeout_s: float | None = None,
        service_args: dict[str, Any] | None = None,
    ) -> cirq.Sampler:
        """The `cirq.Sampler` of this kind (module table), seeded where the kind allows it.

        Args:
            seed: Seed of the shots (simulators and the emulator).
            cpu_threads: Simulator threads; 0: every core.
            project_id: ``google_engine`` only: the Google Cloud project (from the environment).
            timeout_s: ``google_engine`` only: seconds an Engine call may take (None: `engine.engine_timeout`'s).
            service_args: ``google_engine`` only: gRPC client options (tests point it elsewhere).
        """
        return self.make(BuildArgs(seed, threads(cpu_threads), project_id, timeout_s, service_args))


def resolve(config: SamplerConfig) -> SamplerKind:
    """The `SamplerKind` of a validated ``hardware.sampler`` section: the one place a kind is decided.

    The kind's entry in `qmu_core.config.SAMPLERS` names its builder (one of the ``*_kind``
    functions below), so adding a kind is its config class, its entry and its builder.

    Raises:
        ConfigError: For a kind with no builder, or a ``google_engine`` processor whose device spec
            QMU does not hold.
    """
    builder: Callable[[Any], SamplerKind] = SAMPLERS.entry(config.kind).load()
    return builder(config)


def qsim_kind(config: QsimSampler) -> SamplerKind:
    """``qsim``: noiseless state-vector shots on LineQubits."""
    return SamplerKind("qsim", "qsim", None, make=lambda a: qsim_sampler(a.seed, a.threads))


def qsim_noisy_kind(config: QsimNoisySampler) -> SamplerKind:
    """``qsim_noisy``: qsim trajectories under the simple noise rates, on LineQubits."""
    simple = simple_noise_model(config.depolarizing, config.amplitude_damping, config.readout_error)
    return SamplerKind(
        "qsim_noisy", "qsim_noisy", None, make=lambda a: qsim_sampler(a.seed, a.threads, simple), noise=lambda: simple
    )


def virtual_kind(config: GoogleVirtualSampler) -> SamplerKind:
    """``google_virtual``: the processor's noiseless virtual engine."""
    proc = processor(config.processor)
    return SamplerKind(
        config.kind,
        f"{config.kind} ({proc.name})",
        proc,
        make=lambda a: virtual_sampler(proc, seed=a.seed, cpu_threads=a.threads),
    )


def noisy_qvm_kind(config: GoogleNoisyQVMSampler) -> SamplerKind:
    """``google_noisy_qvm``: the processor's noisy virtual machine (median calibration)."""
    proc = processor(config.processor)
    return SamplerKind(
        config.kind,
        f"{config.kind} ({proc.name})",
        proc,
        make=lambda a: noisy_qvm_sampler(proc, seed=a.seed, cpu_threads=a.threads),
        noise=functools.partial(noise_model, proc),
    )


def engine_kind(config: GoogleEngineSampler) -> SamplerKind:
    """``google_engine``: the real Quantum Engine (needs a Google Cloud project)."""
    proc = _engine_processor(config)
    return SamplerKind(
        config.kind,
        f"google_engine ({config.processor_id})",
        proc,
        make=lambda a: engine_sampler(
            config, project_id=a.project_id, timeout_s=a.timeout_s, service_args=a.service_args
        ),
        needs_project=True,
    )


def emulator_kind(config: EmulatorSampler) -> SamplerKind:
    """The emulator under the noise it names: a processor's calibration, the simple rates, or none."""
    proc: Processor | None = None
    if config.noise == "processor":
        proc = processor(config.processor)
        found: Callable[[], cirq.NoiseModel | None] = functools.partial(noise_model, proc, config.noise_scale)
        what = f"{proc.name} noise" + (f" x {config.noise_scale:g}" if config.noise_scale != 1.0 else "")
    elif config.noise == "qsim_noisy":
        simple = simple_noise_model(config.depolarizing, config.amplitude_damping, config.readout_error)
        found, what = (lambda: simple), "simple noise"
    else:
        found, what = _noiseless, "noiseless"
    return SamplerKind(
        config.kind,
        f"emulator ({what})",
        proc,
        make=lambda a: DensityMatrixEmulator(found(), seed=a.seed),
        noise=found,
        draws_from_distribution=True,
    )


def build(
    config: SamplerConfig,
    *,
    seed: int,
    cpu_threads: int = 0,
    project_id: str | None = None,
    timeout_s: float | None = None,
    service_args: dict[str, Any] | None = None,
) -> cirq.Sampler:
    """``resolve(config).build(...)``: the `cirq.Sampler` of a ``hardware.sampler`` section."""
    return resolve(config).build(
        seed=seed, cpu_threads=cpu_threads, project_id=project_id, timeout_s=timeout_s, service_args=service_args
    )
