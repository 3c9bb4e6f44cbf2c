"""A real Prefect server and worker for tests: processes, environment, API helpers.

`Processes` starts long-running children (`prefect server start`, `prefect worker start`), each
in its own session with its output in a log file, and stops them with every descendant (the flow
run processes a worker starts sit in process groups of their own, and their model-training
workers below them). `server_env` is the environment of a private server: its own PREFECT_HOME
and SQLite database, no analytics. `start_server`, `create_pool`, `deploy`, `start_worker` and
`wait_final` are the steps every server test takes, with failures that show the log that explains
them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from qmu_core import environment

__all__ = [
    "BIN",
    "FINAL",
    "ROOT",
    "Processes",
    "create_pool",
    "deploy",
    "deployment_id",
    "free_port",
    "logs",
    "processes",
    "run_cli",
    "server_env",
    "start_server",
    "start_worker",
    "tail",
    "wait_final",
]

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
SERVER_START_TIMEOUT = 120.0  # s; migrations of a fresh database take ~15 s on 2 cores
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(log: Path, lines: int = 30) -> str:
    """The last `lines` lines of `log` (or a note that there is none)."""
    text = log.read_text(errors="replace").splitlines() if log.exists() else ["(no log)"]
    return "\n".join(text[-lines:])


class Processes:
    """Long-running children, each in its own session; `stop_all` ends them and every descendant."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        """Start `argv` in the repository root, its output to `log`."""
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        self.started.append((name, proc, log))
        return proc

    def check_alive(self) -> None:
        """Fail the test, with the log, if a child has exited."""
        for name, proc, log in self.started:
            if proc.poll() is not None:
                pytest.fail(f"the {name} exited early with code {proc.returncode}; its log {log}:\n{tail(log)}")

    def descendants(self, name: str) -> list[Any]:
        """The living descendants (psutil processes) of the child called `name`."""
        import psutil

        for started, proc, _ in self.started:
            if started == name:
                with contextlib.suppress(psutil.Error):
                    return [p for p in psutil.Process(proc.pid).children(recursive=True) if p.is_running()]
        return []

    def stop_all(self) -> None:
        """Newest first (the worker before the server): SIGTERM, then SIGKILL to whatever is left.

        The flow-run processes a worker starts may sit in process groups of their own, so every
        descendant is collected before its parent goes (orphans are re-parented out of reach).
        """
        import psutil

        for _, proc, _ in reversed(self.started):
            family: list[psutil.Process] = []
            with contextlib.suppress(psutil.Error):
                family = psutil.Process(proc.pid).children(recursive=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            for child in family:
                with contextlib.suppress(psutil.Error):
                    child.terminate()
            # A test's server has nothing to save. Under the full suite one of them once used a whole
            # 20 s here (alone they stop within 1.1 s; cause not found), so it gets 5 s.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            _, alive = psutil.wait_procs(family, timeout=5)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            for child in alive:
                with contextlib.suppress(psutil.Error):
                    child.kill()
            proc.wait(timeout=15)


@contextlib.contextmanager
def processes() -> Iterator[Processes]:
    """`Processes`, all stopped on the way out (use in a fixture)."""
    procs = Processes()
    try:
        yield procs
    finally:
        procs.stop_all()


def server_env(home: Path, api_url: str, **extra: str) -> dict[str, str]:
    """The environment of a Prefect server at `api_url` whose home (and SQLite database) is `home`.

    This process's environment without its PREFECT_ settings, with QMU's variables
    (`qmu_core.environment.ENV`); `extra` added last.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and k != "QMU_REPO"}
    env.update(
        environment.ENV,
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_LOG_RETRYABLE_ERRORS="true",  # SQLite lock contention shows up as 503s: log why
        PREFECT_WORKER_QUERY_SECONDS="3",
    )
    env.update(extra)
    return env


def run_cli(argv: list[str], env: dict[str, str], what: str, timeout: float = 180.0) -> str:
    """Run a command in the repository root; fail the test with its output if it fails."""
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-3000:]
        pytest.fail(f"{what} failed (`{' '.join(argv)}` in {ROOT}, exit {done.returncode}):\n{output}")
    return done.stdout


def start_server(procs: Processes, home: Path, *, ui: bool = False, **extra: str) -> tuple[str, dict[str, str]]:
    """`prefect server start` on a free loopback port with its home in `home`.

    Returns its API URL and the environment that talks to it, once it answers /health.
    """
    from qmu_prefect.server import seed_home

    home.mkdir(parents=True, exist_ok=True)
    seed_home(home)  # the migrated empty database: no 10 s of migrations per server
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = server_env(home, api, **extra)
    server = env | {"PREFECT_UI_ENABLED": "true" if ui else "false"}
    argv = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    log = home / "server.log"
    procs.start("prefect server", argv, server, log)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        procs.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return api, env
        time.sleep(0.5)
    pytest.fail(f"prefect server did not answer {api}/health within {SERVER_START_TIMEOUT:.0f} s:\n{tail(log)}")


def create_pool(env: dict[str, str], pool: str = "qmu-process") -> None:
    """The process work pool the deployments of prefect.yaml use."""
    run_cli([str(BIN / "prefect"), "work-pool", "create", pool, "--type", "process"], env, f"creating work pool {pool}")


def deploy(env: dict[str, str], *names: str) -> None:
    """`QMU_REPO=<repo> prefect --no-prompt deploy` of prefect.yaml's deployments `names` (all without)."""
    which = [a for name in names for a in ("--name", name)] or ["--all"]
    argv = [str(BIN / "prefect"), "--no-prompt", "deploy", *which]
    run_cli(argv, env | {"QMU_REPO": str(ROOT)}, f"prefect deploy {' '.join(which)}")


def start_worker(procs: Processes, env: dict[str, str], log: Path, pool: str = "qmu-process") -> None:
    """`prefect worker start --pool <pool>`, its output to `log`."""
    procs.start("prefect worker", [str(BIN / "prefect"), "worker", "start", "--pool", pool], env, log)


def deployment_id(api: str, name: str) -> str:
    """The id of the deployment called `name`; fails the test if there is none."""
    found = httpx.post(f"{api}/deployments/filter", json={"deployments": {"name": {"any_": [name]}}}).json()
    assert found, f"no deployment named {name!r} on {api}; check prefect.yaml"
    return str(found[0]["id"])


def create_flow_run(api: str, deployment: str, parameters: dict[str, Any]) -> str:
    """A run of `deployment` created as the UI's form creates it (its body's `parameters`); its id."""
    url = f"{api}/deployments/{deployment_id(api, deployment)}/create_flow_run"
    for _ in range(5):  # 503: the server was busy (as Prefect's own client does, ask again)
        created = httpx.post(url, json={"parameters": parameters}, timeout=30)
        if created.status_code != 503:
            break
        time.sleep(1.0)
    assert created.status_code == 201, created.text  # the server's JSON-schema check passed
    return str(created.json()["id"])


def wait_final(api: str, run_id: str, procs: Processes, worker_log: Path, timeout: float) -> dict[str, Any]:
    """The flow run once it is in a final state; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        procs.check_alive()
        run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
        if run["state_type"] in FINAL:
            return run
        time.sleep(1)
    pytest.fail(
        f"flow run {run_id} is still {run.get('state_type')} after {timeout:.0f} s; "
        f"worker log {worker_log}:\n{tail(worker_log)}"
    )


def logs(api: str, run_id: str) -> list[dict[str, Any]]:
    """Every log record of flow run `run_id` (its tasks' too), oldest first."""
    records: list[dict[str, Any]] = []
    while True:
        page = httpx.post(
            f"{api}/logs/filter",
            json={"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "offset": len(records),
                  "limit": 200},
            timeout=30,
        ).json()  # fmt: skip
        records.extend(page)
        if len(page) < 200:
            return records
