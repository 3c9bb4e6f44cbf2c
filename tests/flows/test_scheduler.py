"""The Prefect server's scheduler creates runs for the `smoke` deployment of prefect.yaml.

A real `prefect server start` (scheduler service included; the ephemeral server and
`prefect_test_harness` run no scheduler) in a temporary PREFECT_HOME. The test registers the
deployment from prefect.yaml (entrypoint, work pool, parameters; schedules converted the way
`prefect deploy` converts them) and waits for the scheduler to insert its runs. Nothing here creates
a flow run.

Regression: with SQLAlchemy 2.1 the scheduler's bulk insert fails every loop
(`InvalidRequestError: Can't evaluate bulk DML statement`) and no run is ever scheduled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SERVER_START_TIMEOUT = 90.0  # s; a cold start (migrations) takes ~15 s on 2 cores
SCHEDULE_TIMEOUT = 90.0  # s; the recent-deployments loop runs every 5 s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _smoke_spec() -> dict[str, Any]:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return next(d for d in spec["deployments"] if d["name"] == "smoke")


def _errors(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    hits = [line for line in lines if "Error" in line or "ERROR" in line]
    return "\n".join(hits[-10:]) or "\n".join(lines[-20:])


class _Server:
    """`prefect server start` in its own process group, with its own home and SQLite database."""

    def __init__(self, home: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self.log = home / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(home),
            PREFECT_API_URL=self.url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_UI_ENABLED="false",
            PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="true",
            PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="5",
        )
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"prefect server exited with {self.proc.returncode}:\n{_errors(self.log)}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        pytest.fail(f"prefect server not healthy after {SERVER_START_TIMEOUT:.0f} s:\n{_errors(self.log)}")

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL to whatever is left of it (children included)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=15)


async def _deploy_smoke_and_wait(spec: dict[str, Any]) -> tuple[UUID, list[Any]]:
    # The conversion `prefect deploy` applies to a prefect.yaml schedule entry.
    from prefect.cli.deploy._schedules import _schedule_config_to_deployment_schedule
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import DeploymentScheduleCreate, WorkPoolCreate
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.flows import load_flow_arguments_from_entrypoint

    path, _, fn_name = spec["entrypoint"].partition(":")
    flow_name = load_flow_arguments_from_entrypoint(f"{ROOT / path}:{fn_name}")["name"]  # parses, imports nothing
    schedules = [DeploymentScheduleCreate(**_schedule_config_to_deployment_schedule(s)) for s in spec["schedules"]]
    pool = spec["work_pool"]["name"]

    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        flow_id = await client.create_flow_from_name(flow_name)
        deployment_id = await client.create_deployment(
            flow_id=flow_id,
            name=spec["name"],
            description=spec.get("description"),
            entrypoint=spec["entrypoint"],
            work_pool_name=pool,
            schedules=schedules,
            parameters=spec.get("parameters", {}),
        )
        deployment = await client.read_deployment(deployment_id)
        assert [s.schedule.cron for s in deployment.schedules] == [s["cron"] for s in spec["schedules"]]
        assert all(s.active for s in deployment.schedules)

        runs: list[Any] = []
        deadline = time.monotonic() + SCHEDULE_TIMEOUT
        while time.monotonic() < deadline:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
                ),
            )
            if runs:
                break
            await asyncio.sleep(1)
        return deployment_id, runs


@pytest.mark.timeout(300)
def test_scheduler_creates_runs_for_the_smoke_deployment(tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    spec = _smoke_spec()
    assert spec["schedules"], "prefect.yaml's smoke deployment lost its schedule"
    server = _Server(tmp_path)
    try:
        server.wait_healthy()
        started = time.monotonic()
        with temporary_settings(updates={PREFECT_API_URL: server.url}):
            deployment_id, runs = asyncio.run(_deploy_smoke_and_wait(spec))
        waited = time.monotonic() - started
        assert runs, (
            f"the scheduler created no run for deployment {deployment_id} in {SCHEDULE_TIMEOUT:.0f} s; "
            f"server errors:\n{_errors(server.log)}"
        )
    finally:
        server.stop()

    print(f"{len(runs)} scheduled run(s) {waited:.1f} s after registering the deployment")
    for run in runs:
        assert run.deployment_id == deployment_id
        assert run.auto_scheduled, "a run the scheduler did not create"
        assert run.state is not None and run.state.is_scheduled()
        # "30 2 * * *" in UTC, as prefect.yaml says
        start = run.expected_start_time
        assert start is not None and start.utcoffset() is not None
        utc = start.astimezone(datetime.UTC)
        assert (utc.hour, utc.minute, utc.second) == (2, 30, 0)
