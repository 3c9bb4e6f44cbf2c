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

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar, cast

import cirq
import cirq_google

from qmu_core import workers
from qmu_core.config import (
    EmulatorSampler,
    GoogleEngineSampler,
    GoogleNoisyQVMSampler,
    GoogleVirtualSampler,
    QsimNoisySampler,
    QsimSampler,
    SamplerConfig,
)
from qmu_core.errors import ConfigError, QMUError
from qmu_core.hardware import processors
from qmu_core.hardware.emulator import DensityMatrixEmulator
from qmu_core.hardware.sampling import qsim_sampler

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "PROJECT_ENV",
    "EngineTimeout",
    "build",
    "describe",
    "engine_sampler",
    "engine_timeout",
    "noise_model",
    "project_id_from_env",
    "target",
    "threads",
]

_T = TypeVar("_T")

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


DEFAULT_TIMEOUT_S = 60.0
"""Seconds an Engine call may take before it is given up, unless `engine_timeout` says otherwise."""

_TIMEOUT_S: ContextVar[float] = ContextVar("qmu_engine_timeout_s", default=DEFAULT_TIMEOUT_S)


@contextlib.contextmanager
def engine_timeout(seconds: float) -> Iterator[None]:
    """Inside (and in the tasks submitted from inside, which copy the context): Engine samplers
    built without an explicit `timeout_s` give up a call after `seconds` (``hardware.timeout_s``:
    a flow wraps its body in it; the timeout is not an input of any stage, so not of its cache key)."""
    token = _TIMEOUT_S.set(float(seconds))
    try:
        yield
    finally:
        _TIMEOUT_S.reset(token)


STOP_POLL_S = 0.2
"""While an Engine call runs, how often its caller checks whether the run was stopped (`workers.cancel`)."""

DEFAULT_ENDPOINT = "quantum.googleapis.com"
"""The Quantum Engine API endpoint unless ``service_args`` name another."""


class _EngineSampler(cirq_google.ProcessorSampler):
    """A `cirq_google.ProcessorSampler` whose calls end within `timeout_s`.

    Without network the Engine client waits for an answer (and retries with backoff for up to an
    hour) in its own thread; each call here runs in a daemon thread and is given up after
    `timeout_s` with a `QMUError` naming the processor, the endpoint and the likely causes, or
    within `STOP_POLL_S` when the run is stopped (SIGTERM, Ctrl-C, a cancel: `workers.cancel`,
    which the flows call then) with `workers.Cancelled`. The abandoned call dies with the process.
    """

    def __init__(self, *, timeout_s: float, endpoint: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeout_s = timeout_s
        self.endpoint = endpoint

    def _within_deadline(self, call: Callable[[], _T], what: str) -> _T:
        box: dict[str, Any] = {}
        done = threading.Event()

        def work() -> None:
            try:
                box["value"] = call()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                box["error"] = exc
            finally:
                done.set()

        threading.Thread(target=work, name=f"qmu-engine-{what}", daemon=True).start()
        deadline = time.monotonic() + self.timeout_s
        while not done.wait(min(STOP_POLL_S, max(0.0, deadline - time.monotonic()))):
            if workers.is_cancelled():  # the run was cancelled or terminated (SIGTERM, Ctrl-C)
                raise workers.Cancelled(
                    f"google_engine {what} on {self._processor_id()!r} abandoned: the run was stopped. "
                    "Finished stages are kept and reused next time."
                )
            if time.monotonic() < deadline:
                continue
            raise EngineTimeout(
                f"google_engine processor {self._processor_id()!r} at {self.endpoint}: {what} got no answer "
                f"within {self.timeout_s:g} s (network? credentials? `gcloud auth application-default login`); "
                "raise hardware.timeout_s for a long queue."
            )
        if "error" in box:
            raise box["error"]
        return cast(_T, box["value"])

    def _processor_id(self) -> str:
        return str(getattr(self.processor, "processor_id", "?"))

    def run_sweep(self, program: cirq.AbstractCircuit, params: Any, repetitions: int = 1) -> Sequence[cirq.Result]:
        return self._within_deadline(lambda: super(_EngineSampler, self).run_sweep(program, params, repetitions), "run")

    def run_batch(
        self, programs: Sequence[cirq.AbstractCircuit], params_list: Any = None, repetitions: Any = 1
    ) -> Sequence[Sequence[cirq.Result]]:
        return self._within_deadline(
            lambda: super(_EngineSampler, self).run_batch(programs, params_list, repetitions), "run_batch"
        )


class EngineTimeout(QMUError):
    """An Engine call got no answer within `hardware.timeout_s`."""


def engine_sampler(
    config: GoogleEngineSampler,
    *,
    project_id: str | None,
    timeout_s: float | None = None,
    service_args: dict[str, Any] | None = None,
) -> cirq.Sampler:
    """A `cirq_google.ProcessorSampler` on the real Quantum Engine (no network until it runs)
    whose every call ends within `timeout_s` (`EngineTimeout` otherwise; None: `engine_timeout`'s,
    else `DEFAULT_TIMEOUT_S`).

    Args:
        service_args: Options of the gRPC client (``client_options``, ``credentials``), for tests.

    Raises:
        ConfigError: Without a project id.
    """
    if not project_id:
        raise ConfigError(
            "hardware.sampler.kind='google_engine' needs a Google Cloud project, which QMU reads only from the "
            f"environment: set {PROJECT_ENV}=<project> (or create the Prefect Secret block "
            "'qmu-google-cloud-project'), and authenticate with `gcloud auth application-default login`."
        )
    engine = cirq_google.Engine(project_id=project_id, service_args=service_args)
    options = (service_args or {}).get("client_options") or {}
    endpoint = options.get("api_endpoint") if isinstance(options, dict) else getattr(options, "api_endpoint", None)
    return _EngineSampler(
        processor=engine.get_processor(config.processor_id),
        run_name=config.run_name,
        device_config_name=config.device_config_name,
        timeout_s=_TIMEOUT_S.get() if timeout_s is None else timeout_s,
        endpoint=str(endpoint or DEFAULT_ENDPOINT),
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
    """The `cirq.Sampler` of `config` (module table), seeded where the kind allows it.

    Args:
        config: The `hardware.sampler` section.
        seed: Seed of the shots (simulators and the emulator).
        cpu_threads: Simulator threads; 0: every core.
        project_id: ``google_engine`` only: the Google Cloud project (from the environment).
        timeout_s: ``google_engine`` only: seconds an Engine call may take (None: `engine_timeout`'s).
        service_args: ``google_engine`` only: gRPC client options (tests point it elsewhere).
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
        return engine_sampler(config, project_id=project_id, timeout_s=timeout_s, service_args=service_args)
    if isinstance(config, EmulatorSampler):
        return DensityMatrixEmulator(noise_model(config), seed=seed)
    raise ConfigError(f"Unknown sampler kind {getattr(config, 'kind', config)!r}.")  # pragma: no cover
