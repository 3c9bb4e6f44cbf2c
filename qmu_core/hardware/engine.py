"""The real Google Quantum Engine's sampler: calls that end within a deadline, and the project id.

* `EngineSampler`: a ``cirq_google.ProcessorSampler`` whose every call ends within its
  ``timeout_s`` (`EngineTimeout`), or at once when the run is stopped (`workers.Cancelled`);
* `engine_timeout`: the timeout Engine samplers built inside it use (``hardware.timeout_s``);
* `project_id_from_env`: the Google Cloud project from `PROJECT_ENV`. The project id is never part
  of a config: the caller passes it from the environment (or a Prefect Secret in ``tasks/``).

`qmu_core.hardware.samplers` builds it (``hardware.sampler.kind='google_engine'``).
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
from qmu_core.errors import QMUError

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_TIMEOUT_S",
    "PROJECT_ENV",
    "EngineSampler",
    "EngineTimeout",
    "current_timeout_s",
    "engine_timeout",
    "project_id_from_env",
]

_T = TypeVar("_T")

PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
"""Environment variable holding the Google Cloud project of the Quantum Engine."""


def project_id_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The Engine project from `PROJECT_ENV`, or None."""
    value = (environ if environ is not None else os.environ).get(PROJECT_ENV, "").strip()
    return value or None


DEFAULT_TIMEOUT_S = 60.0
"""Seconds an Engine call may take before it is given up, unless `engine_timeout` says otherwise."""

_TIMEOUT_S: ContextVar[float] = ContextVar("qmu_engine_timeout_s", default=DEFAULT_TIMEOUT_S)


@contextlib.contextmanager
def engine_timeout(seconds: float) -> Iterator[None]:
    """Make Engine samplers built inside without an explicit `timeout_s` give up a call after `seconds`.

    Inside also covers the tasks submitted from inside, which copy the context. `seconds` is
    ``hardware.timeout_s``: a flow wraps its body in it; the timeout is not an input of any
    stage, so not of its cache key.
    """
    token = _TIMEOUT_S.set(float(seconds))
    try:
        yield
    finally:
        _TIMEOUT_S.reset(token)


def current_timeout_s() -> float:
    """Seconds an Engine call may take here: `engine_timeout`'s, else `DEFAULT_TIMEOUT_S`."""
    return _TIMEOUT_S.get()


STOP_POLL_S = 0.2
"""While an Engine call runs, how often its caller checks whether the run was stopped (`workers.cancel`)."""

DEFAULT_ENDPOINT = "quantum.googleapis.com"
"""The Quantum Engine API endpoint unless ``service_args`` name another."""


class EngineSampler(cirq_google.ProcessorSampler):
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
        """``cirq.Sampler.run_sweep`` on the Engine, ending within `timeout_s` (class doc)."""
        return self._within_deadline(lambda: super(EngineSampler, self).run_sweep(program, params, repetitions), "run")

    def run_batch(
        self, programs: Sequence[cirq.AbstractCircuit], params_list: Any = None, repetitions: Any = 1
    ) -> Sequence[Sequence[cirq.Result]]:
        """``cirq.Sampler.run_batch`` on the Engine, ending within `timeout_s` (class doc)."""
        return self._within_deadline(
            lambda: super(EngineSampler, self).run_batch(programs, params_list, repetitions), "run_batch"
        )


class EngineTimeout(QMUError):
    """An Engine call got no answer within `hardware.timeout_s`."""
