"""Fixtures of the flow tests: one real Prefect server and `process` worker with the deployments."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import prefect_procs as pp

_LAST_USER: list[str] = []  # the node id of the last test that uses `deployed_server`
_STOPS: list[pp.Processes] = []


@dataclass(frozen=True)
class DeployedServer:
    """A real `prefect server start`, the `qmu-process` pool, the `smoke` and `audit` deployments and a worker."""

    api: str
    env: dict[str, str]
    procs: pp.Processes
    worker_log: Path


@pytest.fixture(scope="session")
def deployed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployedServer]:
    """`prefect server start` in a temporary PREFECT_HOME, deployed and served, as the UI uses it.

    The `qmu-process` pool, `QMU_REPO=<repo> prefect --no-prompt deploy --name smoke --name audit`
    and a `prefect worker start` subprocess. Shared by the tests that start runs as the UI does,
    each run in an artifact root of its own; stopped after the last of them.
    """
    tmp = tmp_path_factory.mktemp("prefect-server")
    with pp.processes() as procs:
        api, env = pp.start_server(procs, tmp / "home")
        pp.create_pool(env)
        pp.deploy(env, "smoke", "audit")
        worker_log = tmp / "worker.log"
        pp.start_worker(procs, env, worker_log)
        _STOPS.append(procs)
        yield DeployedServer(api, env, procs, worker_log)


@pytest.hookimpl(trylast=True)  # the final order and selection (after -k / -m and any reordering)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Note the last test that uses `deployed_server`, so its processes stop after it."""
    users = [item.nodeid for item in items if "deployed_server" in getattr(item, "fixturenames", ())]
    _LAST_USER[:] = users[-1:]


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the server and worker after their last test, not at the end of the session."""
    if _LAST_USER and item.nodeid == _LAST_USER[0]:
        while _STOPS:
            _STOPS.pop().stop_all()
