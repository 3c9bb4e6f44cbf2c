"""Faults end to end (issue 25, items 8, 9, 12, 13).

The real cause once, a dead worker costs (almost) nothing, SIGTERM stops a flow run like Ctrl-C, no fixed ports.

* A stage that fails makes Prefect raise `UnfinishedRun` (a downstream future is NotReady) in the
  flow: `qmu` prints the stage's own error instead, once, with its fix.
* A training worker killed (kill -9) mid-training: the pool restarts and every job it failed,
  the killed one included, runs once more (`qmu_core.workers`): the run completes.
* SIGTERM during a long training: no stage starts after it, exit 143 (with SIGINT and the
  temporary server's end, in test_reliability.py's interrupt test).
* A local Dask cluster binds no fixed port (its scheduler's HTTP server was on 127.0.0.1:8787).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from qmu_cli.root import main
from qmu_core import environment

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- the real cause (8)


class DefaultCredentialsError(Exception):
    """Stands in for google.auth's error of the same name (a root error that is no QMUError)."""


def _failing_flow(error: BaseException) -> Any:
    from prefect import flow, task

    @task
    def broken() -> int:
        raise error

    @task
    def downstream(x: int) -> int:
        return x + 1

    @task
    def fine() -> int:
        return 1

    @flow(name="faulty")
    def faulty(config: Any) -> str:
        first = broken.submit()
        others = [fine.submit() for _ in range(3)]
        later = downstream.submit(first)  # NotReady when `broken` fails: result() is UnfinishedRun
        return str(later.result() + sum(o.result() for o in others))

    return faulty


def _error(kind: str, root: Path) -> BaseException:
    from qmu_core.errors import DataError

    if kind == "qmu-error":
        return DataError("The split needs 2000 records but the dataset has 1797. Lower data.n_target_train.")
    if kind == "root-error":
        return DefaultCredentialsError(f"File {root}/key.json is not a valid json file.")
    return OSError(errno.ENOSPC, "No space left on device", f"{root}/model/x.parquet.tmp")


def main_with_failing_flow(kind: str, root: str) -> int:
    """`qmu run` whose flow has a stage that raises the error `kind` (run in a subprocess)."""
    import flows.pipeline

    flows.pipeline.qmu_pipeline = _failing_flow(_error(kind, Path(root)))  # type: ignore[assignment]
    return main(["run", "--preset", "tiny", "--set", f"run.artifact_root={root}"])


def _qmu_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("qmu:") and "temporary Prefect API" not in line]


@pytest.mark.parametrize(
    ("kind", "code", "says"),
    [
        ("qmu-error", 2, ["qmu: error: The split needs 2000 records"]),
        ("root-error", 1, ["DefaultCredentialsError", "{root}/key.json is not a valid json file", "Fix:"]),
        ("disk-full", 2, ["qmu: error:", "disk", "full", "{root}"]),
    ],
)
def test_a_failed_stage_is_its_own_error_once_not_unfinished_run(
    kind: str, code: int, says: list[str], tmp_path: Path
) -> None:
    root = tmp_path / "root"
    script = "import sys; from tests.flows.test_faults import main_with_failing_flow as m; sys.exit(m(*sys.argv[1:]))"
    done = subprocess.run(
        [sys.executable, "-c", script, kind, str(root)],
        cwd=ROOT, env=_env(tmp_path / "home"), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    log = done.stdout + done.stderr
    print(log[-3000:])
    assert done.returncode == code, log[-3000:]
    assert "UnfinishedRun" not in log and "PENDING" not in log
    assert "Traceback" not in log, "a traceback on the console without --debug"
    errors = [line for line in _qmu_lines(log) if "error" in line]
    assert len(errors) == 1, _qmu_lines(log)
    for word in says:
        assert word.format(root=root) in errors[0], errors[0]


# --------------------------------------------------------------------------- subprocess runs (9, 12)


def _env(home: Path) -> dict[str, str]:
    env = environment.child_env(PREFECT_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    return env


def _qmu(tmp: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "qmu_cli", "run", "--preset", "tiny", "--set", f"run.artifact_root={tmp / 'root'}"]
    return subprocess.Popen(
        [*cmd, *extra], cwd=ROOT, env=_env(tmp / "home"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _until(proc: subprocess.Popen[str], pattern: str, timeout: float = 300) -> list[str]:
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if re.search(pattern, line):
            return lines
        assert time.monotonic() < deadline, "".join(lines[-40:])
    pytest.fail("the run ended before " + pattern + ":\n" + "".join(lines[-40:]))


def _training_workers(pid: int) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmd = " ".join(child.cmdline())
            if "multiprocessing.spawn" in cmd and "resource_tracker" not in cmd:
                found.append(child)
    return found


def test_a_killed_training_worker_costs_one_retry_not_the_run(tmp_path: Path) -> None:
    """A training worker killed (kill -9) after its first epoch costs one retry, not the run.

    The run completes: the killed model and the one training beside it train once more on the
    restarted pool, the queued one is not lost (one unlearning method and one reference model:
    three models for two workers).
    """
    proc = _qmu(tmp_path, "--set", "train.epochs=30", "--set", 'unlearn.methods=["ga"]', "--set", "attack.n_shadow=1")
    lines = _until(proc, r": epoch 1/30")
    victims = _training_workers(proc.pid)
    assert victims, "no training worker found"
    victims[0].kill()
    rest, _ = proc.communicate(timeout=600)
    log = "".join(lines) + rest
    print(log[-4000:])
    assert proc.returncode == 0, log[-4000:]
    assert "UnfinishedRun" not in log and "Traceback" not in log
    assert "leaked semaphore" not in log
    said = [line for line in log.splitlines() if "died" in line]
    assert len(said) == 1 and "once more" in said[0], said
    trained = re.findall(r"Task run '(train [^']+)' - stage model \S+: computed", log)
    assert len(trained) == 3 and len(set(trained)) == 3, trained  # every model of the run, none lost
    assert Path(log.strip().splitlines()[-1]).name == "summary.json"


def main_with_swallowing_flow(root: str) -> int:
    """`qmu run` whose flow swallows the exception SIGTERM raises in it and goes on to train another model.

    As a library catching BaseException in the main thread would.
    """
    from prefect import flow, task

    import flows.pipeline
    from qmu_core import workers
    from qmu_prefect.runner import ConfiguredTaskRunner

    @task
    def train(name: str) -> int:
        pid = workers.run(workers.ping)
        print(f"job {name} trained", flush=True)
        return pid

    @flow(name="swallowing", task_runner=ConfiguredTaskRunner())
    def swallowing(config: Any) -> str:
        train.submit("first").result()
        try:
            print("qmu-test: ready", flush=True)
            time.sleep(60)
        except BaseException:  # noqa: BLE001 - the library that swallows the signal's exception
            print("qmu-test: swallowed", flush=True)
        train.submit("after").result()
        return str(Path(root) / "summary.json")

    flows.pipeline.qmu_pipeline = swallowing  # type: ignore[assignment]
    return main(["run", "--preset", "tiny", "--set", f"run.artifact_root={root}"])


def test_sigterm_in_a_flow_run_stops_like_ctrl_c_even_when_its_exception_is_swallowed(tmp_path: Path) -> None:
    """Prefect's SIGTERM handler replaces qmu's in a flow run: the exit fallback must still be armed.

    And no training may start after the signal (it went on for ~50 s, issue 25 item 12).
    """
    script = "import sys; from tests.flows.test_faults import main_with_swallowing_flow as m; sys.exit(m(sys.argv[1]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "root")],
        cwd=ROOT, env=_env(tmp_path / "home"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = _until(proc, r"qmu-test: ready", timeout=120)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    log = "".join(lines) + rest
    print(f"\nSIGTERM to exit: {time.monotonic() - sent:.1f} s")
    print(log[-3000:])
    assert "job first trained" in log
    assert "job after trained" not in log, "a training started after SIGTERM"
    assert proc.returncode == 143, log[-3000:]
    assert log.count("qmu: terminated") == 1 and "Traceback" not in log


# --------------------------------------------------------------------------- no fixed port (13)


def _listening(pid: int) -> set[tuple[str, int]]:
    return {
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }


def test_a_local_dask_cluster_binds_no_fixed_port() -> None:
    from distributed import LocalCluster

    from qmu_core.config import RunConfig
    from qmu_prefect.runner import build

    runner: Any = build(RunConfig(task_runner="dask", workers=1))
    before = _listening(os.getpid())
    with LocalCluster(**runner.cluster_kwargs) as one, LocalCluster(**runner.cluster_kwargs) as two:
        opened = _listening(os.getpid()) - before
        assert len(opened) >= 4, opened  # each scheduler: its port and its HTTP server's
        assert all(ip == "127.0.0.1" for ip, _ in opened), opened
        assert 8787 not in {port for _, port in opened}, opened
        assert one.scheduler_address != two.scheduler_address
