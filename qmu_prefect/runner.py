"""The flows' task runner, chosen by the run's own config (`run.task_runner`).

A flow's task runner is fixed when the flow is decorated, but QMU's choice is a field of the
flow's parameter, so that the Prefect form, deployments and ``--set`` all reach it.
`ConfiguredTaskRunner` is the flow's runner: on the first submit it reads ``config.run`` of the
flow run being executed and starts the runner it names, then hands every submit to it:

* ``local`` (default): a thread pool in the flow's process. Stages mostly wait (on upstream
  stages, on files, on the model-training worker processes of `qmu_core.workers`, one per core
  by default), so there are enough threads for every submitted stage to wait without holding
  back one that could run.
* ``dask``: prefect-dask's `DaskTaskRunner`. Without ``run.dask_address``, a local cluster of
  ``run.workers`` (0: one per core) single-threaded worker processes, so model training runs in
  them, on loopback ports the system picks (no dashboard; two runs at once do not collide);
  with an address, the existing cluster's workers (other machines too; see docs/running.md).

When the flow run stops on a signal (a cancel from the UI: the Prefect worker sends SIGTERM; or
Ctrl-C), the runner's exit stops the model-training worker processes at once
(`qmu_core.workers.cancel`): the stages training in them end Cancelled instead of failing on a
dead worker, and the run's log says once that it was cancelled (`ConfiguredTaskRunner.__exit__`).

In `qmu run` (a flow run in the CLI's own process), SIGTERM acts at once, not when its exception
reaches the runner's exit: inside a flow run Prefect replaces the process's SIGTERM handler with
its own (which raises `TerminationSignal` in the main thread, where a library may swallow it).
While the runner is in use and the CLI has registered an `on_sigterm` hook, a SIGTERM first stops
the training workers and every later stage (`qmu_core.workers.cancel`, in a thread: no stage
starts after the signal), calls the hooks (`qmu run` arms its exit fallback, as for Ctrl-C), then
hands the signal to the handler it replaced (`_chain_sigterm`). A run a Prefect worker started
keeps Prefect's handler in place: Prefect acknowledges a cancel from the UI only while its own
handler is installed (otherwise the run ends Crashed, not Cancelled).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from prefect.context import FlowRunContext
from prefect.exceptions import TerminationSignal
from prefect.logging.loggers import flow_run_logger
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from qmu_core import environment, workers
from qmu_core.config import QMUConfig, RunConfig

__all__ = ["THREADS", "ConfiguredTaskRunner", "build"]

# Threads of the local runner: every stage of a paper-scale run can be waiting at once.
THREADS = 64

_stopping = threading.Event()
"""Set while a flow run of this process stops on a signal (`ConfiguredTaskRunner.__exit__`)."""

on_sigterm: list[Callable[[], None]] = []
"""Called (in the signal handler) when a flow run that uses the runner gets SIGTERM (module doc)."""


def _stop_now() -> None:
    """Stop the training workers and every later stage, from a thread.

    Not in the signal handler, which may have interrupted the main thread inside `workers`' lock.
    """
    _stopping.set()
    threading.Thread(target=workers.cancel, daemon=True, name="qmu-stop-workers").start()


def _chain_sigterm() -> Callable[[], None] | None:
    """In the main thread of `qmu run`: put a SIGTERM handler in front of the current one.

    The current one is Prefect's, in a flow run. Returns what undoes it, or None where it
    does not apply (module doc) or signals cannot be handled (another thread).
    """
    if not on_sigterm:  # not `qmu run`: Prefect's handler must stay (module doc)
        return None
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except ValueError:
        return None
    if getattr(previous, "_qmu_chained", False):
        return None

    def on_term(signum: int, frame: FrameType | None) -> None:
        _stop_now()
        for hook in list(on_sigterm):
            with contextlib.suppress(Exception):
                hook()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    on_term._qmu_chained = True  # type: ignore[attr-defined]
    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        return None

    def undo() -> None:
        with contextlib.suppress(ValueError):
            if signal.getsignal(signal.SIGTERM) is on_term:
                signal.signal(signal.SIGTERM, previous)

    return undo


class _OneStopLine(logging.Filter):
    """While a run stops on a signal, its log says so once (`ConfiguredTaskRunner._say_stopped`).

    Prefect would add, at ERROR, a "Finished in state Cancelled(...)" line for every stage the
    stop ended and a "Finished in state NotReady(...)" line for every stage waiting on one of
    them, "Flow run was cancelled." or "Crash detected!", and "Finished in state Running()" (the
    Prefect worker, not the flow's process, sets the final state of a cancelled run). The stages'
    states show in the UI; these lines are dropped.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not _stopping.is_set():
            return True
        message = record.getMessage()
        if record.name == "prefect.task_runs":
            return not message.startswith(("Finished in state Cancelled(", "Finished in state NotReady("))
        if record.name == "prefect.flow_runs":
            return not message.startswith(("Flow run was cancelled.", "Crash detected!", "Finished in state Running("))
        return True


_filter = _OneStopLine()
for _name in ("prefect.task_runs", "prefect.flow_runs"):
    logging.getLogger(_name).addFilter(_filter)


def _is_cancel() -> bool:
    """Whether the signal this process got is a cancel, not a plain termination.

    The Prefect worker says so before it sends SIGTERM.
    """
    try:
        from prefect._internal.control_listener import get_intent

        return get_intent() == "cancel"
    except Exception:  # noqa: BLE001 - a private API: without it a cancel reads as a termination
        return False


def build(run: RunConfig) -> TaskRunner[Any]:
    """The task runner that `run` (``config.run``) asks for, not yet started."""
    if run.task_runner == "local":
        return ThreadPoolTaskRunner(max_workers=THREADS)
    from prefect_dask import DaskTaskRunner

    if run.dask_address:
        return DaskTaskRunner(address=run.dask_address)
    n = workers.n_workers(run.workers)
    # Each worker process trains in place (`qmu_core.workers.run`) with its share of the cores.
    env = {**environment.ENV, "TF_NUM_INTRAOP_THREADS": str(max(1, workers.n_workers(0) // n))}
    env["TF_NUM_INTEROP_THREADS"] = "1"
    cluster = {"n_workers": n, "threads_per_worker": 1, "processes": True, "env": env}
    return DaskTaskRunner(cluster_kwargs=cluster | LOCAL_CLUSTER_PORTS)


LOCAL_CLUSTER_PORTS: dict[str, Any] = {
    "dashboard_address": None,
    # `dashboard_address=None` alone still starts the scheduler's HTTP server (health, metrics) on
    # the fixed 127.0.0.1:8787, where a second run on the machine collides: no dashboard, and that
    # server on a free loopback port.
    "scheduler_kwargs": {"dashboard": False, "dashboard_address": "127.0.0.1:0"},
}
"""What a local Dask cluster binds besides its scheduler's free port: nothing fixed (issue 25)."""


def _run_config() -> RunConfig:
    """``config.run`` of the flow run in progress (defaults outside a flow run)."""
    context = FlowRunContext.get()
    config = context.parameters.get("config") if context is not None and context.parameters else None
    if isinstance(config, QMUConfig):
        return config.run
    if isinstance(config, dict):
        return QMUConfig.model_validate(config).run
    return RunConfig()


class ConfiguredTaskRunner(TaskRunner[Any]):
    """Delegates to the runner `build` makes from the flow run's ``config.run`` (module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self._inner: TaskRunner[Any] | None = None
        self._lock = threading.Lock()
        self._flow_run: Any = None
        self._unchain: Callable[[], None] | None = None

    def duplicate(self) -> ConfiguredTaskRunner:
        """A new, unstarted runner of the same kind (Prefect's copy for another flow run)."""
        return type(self)()

    def __reduce__(self) -> tuple[type[ConfiguredTaskRunner], tuple[()]]:
        # The flow (and with it this runner) travels with every task sent to a Dask worker:
        # send the recipe, not the started runner and its lock.
        return type(self), ()

    @property
    def inner(self) -> TaskRunner[Any]:
        """The runner in use, started on first access."""
        with self._lock:
            if self._inner is None:
                context = FlowRunContext.get()
                self._flow_run = context.flow_run if context is not None else None
                workers.resume()  # a run cancelled earlier in this process does not stop this one
                _stopping.clear()
                run = _run_config()
                inner = build(run)
                inner.__enter__()
                self._inner = inner
                self._unchain = _chain_sigterm()
                where = (run.dask_address or "a local cluster") if run.task_runner == "dask" else "this process"
                self.logger.info(f"stages run on {type(inner).__name__} ({where})")
            return self._inner

    def submit(self, task: Any, parameters: dict[str, Any], wait_for: Any = None, dependencies: Any = None) -> Any:
        """Submit `task` to the runner in use."""
        return self.inner.submit(task, parameters, wait_for=wait_for, dependencies=dependencies)

    def map(self, task: Any, parameters: dict[str, Any], wait_for: Any = None) -> Any:
        """Map `task` over `parameters` on the runner in use."""
        return self.inner.map(task, parameters, wait_for=wait_for)

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            inner, self._inner = self._inner, None
            unchain, self._unchain = self._unchain, None
        if unchain is not None:
            unchain()
        error = exc[1] if len(exc) > 1 else None
        if inner is not None and error is not None and not isinstance(error, Exception):
            # A signal (TerminationSignal, KeyboardInterrupt) ends the flow: stop the training
            # workers before the task runner waits for its threads, so that their stages end
            # Cancelled now instead of training on (or failing on a worker the signal killed).
            _stopping.set()
            self._say_stopped(error)
            workers.cancel()
            if not _is_cancel():  # a terminated process may die by the signal next: send the line now
                for handler in logging.getLogger("prefect.flow_runs").handlers:
                    with contextlib.suppress(Exception):
                        handler.flush()
        if inner is not None:
            inner.__exit__(*exc)
        super().__exit__(*exc)

    def _say_stopped(self, error: BaseException) -> None:
        """The run's one line about why it stopped (Prefect's own state change says the rest)."""
        if _is_cancel():
            level, message = logging.INFO, "run cancelled"
        elif isinstance(error, TerminationSignal):
            level, message = logging.WARNING, f"run terminated (signal {error.signal})"
        else:
            level, message = logging.WARNING, f"run interrupted ({type(error).__name__})"
        message += "; stopped the stages still running. Finished stages are kept and reused by the next run."
        try:
            logger: logging.Logger | logging.LoggerAdapter = (
                flow_run_logger(self._flow_run) if self._flow_run is not None else self.logger
            )
        except Exception:  # noqa: BLE001 - no logger is no reason to fail the stop
            logger = self.logger
        logger.log(level, message)
