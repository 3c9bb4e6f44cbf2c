"""The sampler seam: one `cirq.Sampler` per `hardware.sampler` config, and what it compiles for.

Every kind hands back a plain ``cirq.Sampler``, so `qmu_core.hardware.sampling.run_circuits` and
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

`noise_model` gives each kind's noise (None when noiseless or unknown, as on the real device),
which is also how the infinite-shot limit of any kind is computed (the emulator's exact
distribution). The Engine's project id is never part of a config: the caller passes it from
the environment (`project_id_from_env`, or a Prefect Secret in ``tasks/``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import cirq

from qmu_core.config import (
    EmulatorSampler,
    GoogleEngineSampler,
    GoogleNoisyQVMSampler,
    GoogleVirtualSampler,
    QsimNoisySampler,
    QsimSampler,
    SamplerConfig,
)
from qmu_core.errors import ConfigError
from qmu_core.hardware import processors
from qmu_core.hardware.emulator import DensityMatrixEmulator
from qmu_core.hardware.sampling import qsim_sampler

__all__ = [
    "PROJECT_ENV",
    "build",
    "describe",
    "engine_sampler",
    "noise_model",
    "project_id_from_env",
    "target",
    "threads",
]

PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
"""Environment variable holding the Google Cloud project of the Quantum Engine."""


def threads(cpu_threads: int) -> int:
    """``cpu_threads``, or every core this process may use for 0."""
    return cpu_threads if cpu_threads > 0 else len(os.sched_getaffinity(0))


def target(config: SamplerConfig) -> str | None:
    """The processor the circuits compile for (None: LineQubits, no compilation)."""
    if isinstance(config, GoogleVirtualSampler | GoogleNoisyQVMSampler):
        return config.processor
    if isinstance(config, GoogleEngineSampler):
        if config.processor_id not in processors.PROCESSORS:
            raise ConfigError(
                f"hardware.sampler.processor_id={config.processor_id!r}: QMU compiles for a processor whose device "
                f"spec it holds offline ({', '.join(processors.PROCESSORS)}); pick one of those, or add the "
                "processor's device spec to qmu_core/hardware/data."
            )
        return config.processor_id
    if isinstance(config, EmulatorSampler) and config.noise == "processor":
        return config.processor
    return None


def noise_model(config: SamplerConfig) -> cirq.NoiseModel | None:
    """The noise of `config`'s kind: calibration noise, the simple rates, or None (noiseless or unknown)."""
    if isinstance(config, GoogleNoisyQVMSampler):
        return processors.noise_model(config.processor)
    if isinstance(config, QsimNoisySampler):
        return processors.simple_noise_model(config.depolarizing, config.amplitude_damping, config.readout_error)
    if isinstance(config, EmulatorSampler):
        if config.noise == "processor":
            return processors.noise_model(config.processor)
        if config.noise == "qsim_noisy":
            return processors.simple_noise_model(config.depolarizing, config.amplitude_damping, config.readout_error)
    return None


def describe(config: SamplerConfig) -> str:
    """A one-line name for reports, e.g. ``emulator (willow_pink noise)`` (never a project id)."""
    if isinstance(config, EmulatorSampler):
        noise = {"processor": f"{config.processor} noise", "qsim_noisy": "simple noise", "none": "noiseless"}
        return f"emulator ({noise[config.noise]})"
    if isinstance(config, GoogleEngineSampler):
        return f"google_engine ({config.processor_id})"
    if isinstance(config, GoogleVirtualSampler | GoogleNoisyQVMSampler):
        return f"{config.kind} ({config.processor})"
    return config.kind


def project_id_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The Engine project from `PROJECT_ENV`, or None."""
    value = (environ if environ is not None else os.environ).get(PROJECT_ENV, "").strip()
    return value or None


def engine_sampler(config: GoogleEngineSampler, *, project_id: str | None) -> cirq.Sampler:
    """A `cirq_google.ProcessorSampler` on the real Quantum Engine (no network until it runs).

    Raises:
        ConfigError: Without a project id.
    """
    if not project_id:
        raise ConfigError(
            "hardware.sampler.kind='google_engine' needs a Google Cloud project, which QMU reads only from the "
            f"environment: set {PROJECT_ENV}=<project> (or create the Prefect Secret block "
            "'qmu-google-cloud-project'), and authenticate with `gcloud auth application-default login`."
        )
    import cirq_google

    engine = cirq_google.Engine(project_id=project_id)
    processor = engine.get_processor(config.processor_id)
    return cirq_google.ProcessorSampler(
        processor=processor,
        run_name=config.run_name,
        device_config_name=config.device_config_name,
    )


def build(config: SamplerConfig, *, seed: int, cpu_threads: int = 0, project_id: str | None = None) -> cirq.Sampler:
    """The `cirq.Sampler` of `config` (module table), seeded where the kind allows it.

    Args:
        config: The `hardware.sampler` section.
        seed: Seed of the shots (simulators and the emulator).
        cpu_threads: Simulator threads; 0: every core.
        project_id: ``google_engine`` only: the Google Cloud project (from the environment).
    """
    n = threads(cpu_threads)
    if isinstance(config, QsimSampler):
        return qsim_sampler(seed, n)
    if isinstance(config, QsimNoisySampler):
        return qsim_sampler(seed, n, noise_model(config))
    if isinstance(config, GoogleVirtualSampler):
        return processors.virtual_sampler(config.processor, seed=seed, cpu_threads=n)
    if isinstance(config, GoogleNoisyQVMSampler):
        return processors.noisy_qvm_sampler(config.processor, seed=seed, cpu_threads=n)
    if isinstance(config, GoogleEngineSampler):
        return engine_sampler(config, project_id=project_id)
    if isinstance(config, EmulatorSampler):
        return DensityMatrixEmulator(noise_model(config), seed=seed)
    raise ConfigError(f"Unknown sampler kind {getattr(config, 'kind', config)!r}.")  # pragma: no cover
