"""`prefect deploy --all` registers prefect.yaml's deployments; the scheduler fires the nightly one.

A real `prefect server start` (scheduler service included; the ephemeral server and
`prefect_test_harness` run no scheduler) in a temporary PREFECT_HOME. The test runs the `prefect`
commands of prefect.yaml's header in a pseudo-terminal (so a prompt would hang, not pass), then
waits for the scheduler to insert the smoke deployment's runs. Nothing here creates a flow run.

Regression: with SQLAlchemy 2.1 the scheduler's bulk insert fails every loop
(`InvalidRequestError: Can't evaluate bulk DML statement`) and no run is ever scheduled.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
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

from qmu_core import environment

ROOT = Path(__file__).resolve().parents[2]
SERVER_START_TIMEOUT = 90.0  # s; a cold start (migrations) takes ~15 s on 2 cores
SCHEDULE_TIMEOUT = 90.0  # s; the recent-deployments loop runs every 5 s


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        from qmu_prefect.server import seed_home

        seed_home(home)  # a fresh server: the migrated empty database, without 10 s of migrations
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            environment.ENV,
            PREFECT_HOME=str(home),
            PREFECT_API_URL=self.url,
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


def _prefect(server: _Server, *args: str, env: dict[str, str] | None = None, timeout: float = 240) -> str:
    """Run the `prefect` CLI against `server` in a pseudo-terminal, as a user types it.

    A command that stops at a prompt never finishes and fails the test with what it printed.
    """
    import pty

    full = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "QMU_REPO"}
    full.update(PREFECT_API_URL=server.url, PREFECT_HOME=str(server.log.parent), COLUMNS="200", **(env or {}))
    full.update(environment.ENV)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("prefect")), *args],
        cwd=ROOT,
        env=full,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    text = b"".join(chunks).decode(errors="replace")
    try:
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"`prefect {' '.join(args)}` was still running after {timeout:.0f} s (a prompt?):\n{text[-3000:]}")
    return f"exit {code}\n{text}"


async def _scheduled_runs(deployment_id: UUID) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    async with get_client() as client:
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
        return runs


@pytest.mark.timeout(600)
def test_prefect_deploy_all_registers_every_deployment_and_the_nightly_schedule_fires(tmp_path: Path) -> None:
    """The commands of prefect.yaml's header, verbatim, against a fresh server.

    Without QMU_REPO `prefect deploy --all` stops at deploy time with the remedy; with it,
    every deployment registers without a prompt, `prefect deployment ls` lists them, the
    smoke deployment's nightly schedule shows, and the server's scheduler creates its runs.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    expected = {(d["entrypoint"], d["name"]) for d in spec["deployments"]}
    server = _Server(tmp_path)
    try:
        server.wait_healthy()
        assert _prefect(server, "work-pool", "create", "qmu-process", "--type", "process").startswith("exit 0")

        missing = _prefect(server, "deploy", "--all")
        assert missing.startswith("exit 1") and "QMU_REPO is not set" in missing and "QMU_REPO=$PWD" in missing

        deployed = _prefect(server, "deploy", "--all", env={"QMU_REPO": str(ROOT)})
        assert deployed.startswith("exit 0"), deployed[-3000:]
        assert deployed.count("successfully created") == len(expected), deployed[-3000:]

        listed = json.loads(_prefect(server, "deployment", "ls", "-o", "json").split("\n", 1)[1])
        assert {(d["entrypoint"], d["name"]) for d in listed} == expected
        by_name = {d["name"]: d for d in listed}
        smoke = by_name["smoke"]
        assert [s["schedule"]["cron"] for s in smoke["schedules"]] == ["30 2 * * *"]
        assert smoke["parameters"] == {"config": {"preset": "tiny"}}
        assert smoke["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(ROOT)
        assert all(not d["schedules"] for n, d in by_name.items() if n != "smoke")
        shown = _prefect(server, "deployment", "schedule", "ls", "qmu-pipeline/smoke")
        assert "cron: 30 2 * * *" in shown and "True" in shown, shown

        started = time.monotonic()
        with temporary_settings(updates={PREFECT_API_URL: server.url}):
            runs = asyncio.run(_scheduled_runs(UUID(smoke["id"])))
        waited = time.monotonic() - started
        assert runs, f"the scheduler created no run in {SCHEDULE_TIMEOUT:.0f} s; server errors:\n{_errors(server.log)}"
    finally:
        server.stop()

    print(f"{len(runs)} scheduled run(s) {waited:.1f} s after `prefect deploy --all`")
    for run in runs:
        assert run.auto_scheduled, "a run the scheduler did not create"
        assert run.state is not None and run.state.is_scheduled()
        # "30 2 * * *" in UTC, as prefect.yaml says
        start = run.expected_start_time
        assert start is not None and start.utcoffset() is not None
        utc = start.astimezone(datetime.UTC)
        assert (utc.hour, utc.minute, utc.second) == (2, 30, 0)
