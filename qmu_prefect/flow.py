"""`qmu_flow`: how every QMU flow is declared, in one place.

A QMU flow prints to its run's log, runs its stages on the `ConfiguredTaskRunner` (the run's own
``config.run`` chooses it), names its runs with a `qmu_prefect.runs` name function and, when its
first parameter is ``config``, checks that config itself (`accepts_config`: Prefect does not
validate it, so a broken rule fails the run with the rule's message alone).

A flow that reads another run's artifacts without owning their rebuild (the audit, the hardware
flows) declares ``rebuild=False``: a cached file there that no longer matches its seal is an error
naming the file (`qmu_core.artifacts.require_seal`), not rebuilt. A missing file, or one whose
stage code or version changed, is computed as everywhere. The stage contract asks `rebuilds`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from prefect import Flow, flow

from qmu_prefect.runner import ConfiguredTaskRunner
from qmu_prefect.runs import accepts_config

__all__ = ["qmu_flow", "rebuilds"]

P = ParamSpec("P")
R = TypeVar("R")

_REBUILD = "qmu_rebuild"
"""The attribute of a flow's function that records its ``rebuild`` (it travels with the function
to Dask workers and through ``Flow.with_options``)."""


def qmu_flow(
    name: str, *, flow_run_name: Callable[[], str], rebuild: bool = True, checks_config: bool = True
) -> Callable[[Callable[P, R]], Flow[P, R]]:
    """Decorator: the Prefect flow `name` of a QMU flow body (module doc).

    Args:
        name: The flow's name (deployments and the UI show it).
        flow_run_name: A `qmu_prefect.runs` name function for its runs.
        rebuild: False for a flow that must not rebuild a cached artifact that fails its seal.
        checks_config: The body's first parameter is ``config``, checked by `accepts_config`.
    """

    def wrap(fn: Callable[P, R]) -> Flow[P, R]:
        body = accepts_config(fn) if checks_config else fn
        setattr(body, _REBUILD, rebuild)
        # `accepts_config` validates: a broken rule fails with its message alone
        checks = {"validate_parameters": False} if checks_config else {}
        return flow(
            name=name, log_prints=True, task_runner=ConfiguredTaskRunner(), flow_run_name=flow_run_name, **checks
        )(body)

    return wrap


def rebuilds(running: Flow[..., Any] | None) -> bool:
    """Whether stages of the flow `running` may rebuild a cached artifact that fails its seal.

    See the module doc; True outside a flow (None), for tests and scripts.
    """
    return running is None or bool(getattr(running.fn, _REBUILD, True))
