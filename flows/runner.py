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
  them; with an address, the existing cluster's workers (other machines too; see the README).
"""

from __future__ import annotations

import threading
from typing import Any

from prefect.context import FlowRunContext
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from qmu_core import workers
from qmu_core.config import QMUConfig, RunConfig

__all__ = ["THREADS", "ConfiguredTaskRunner", "build"]

# Threads of the local runner: every stage of a paper-scale run can be waiting at once.
THREADS = 64


def build(run: RunConfig) -> TaskRunner[Any]:
    """The task runner that `run` (``config.run``) asks for, not yet started."""
    if run.task_runner == "local":
        return ThreadPoolTaskRunner(max_workers=THREADS)
    from prefect_dask import DaskTaskRunner

    if run.dask_address:
        return DaskTaskRunner(address=run.dask_address)
    n = workers.n_workers(run.workers)
    # Each worker process trains in place (`qmu_core.workers.run`) with its share of the cores.
    env = {**workers.WORKER_ENV, "TF_NUM_INTRAOP_THREADS": str(max(1, workers.n_workers(0) // n))}
    env["TF_NUM_INTEROP_THREADS"] = "1"
    cluster = {"n_workers": n, "threads_per_worker": 1, "processes": True, "env": env}
    return DaskTaskRunner(cluster_kwargs=cluster | {"dashboard_address": None})  # no port nobody asked for


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

    def duplicate(self) -> ConfiguredTaskRunner:
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
                run = _run_config()
                inner = build(run)
                inner.__enter__()
                self._inner = inner
                where = (run.dask_address or "a local cluster") if run.task_runner == "dask" else "this process"
                self.logger.info(f"stages run on {type(inner).__name__} ({where})")
            return self._inner

    def submit(self, task: Any, parameters: dict[str, Any], wait_for: Any = None, dependencies: Any = None) -> Any:
        return self.inner.submit(task, parameters, wait_for=wait_for, dependencies=dependencies)

    def map(self, task: Any, parameters: dict[str, Any], wait_for: Any = None) -> Any:
        return self.inner.map(task, parameters, wait_for=wait_for)

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            inner, self._inner = self._inner, None
        if inner is not None:
            inner.__exit__(*exc)
        super().__exit__(*exc)
