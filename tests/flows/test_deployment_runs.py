"""Deployments run as the UI runs them: an audit with only a run's name typed in, and a cancel.

Everything is real, started once for the module (`served`): `prefect server start` in a temporary
PREFECT_HOME, the `qmu-process` pool, `QMU_REPO=<repo> prefect --no-prompt deploy --name smoke
--name audit`, a `prefect worker start` subprocess. Each run writes an artifact root of its own.

**Audit.** The test copies the session's `tiny` run (what the `smoke` deployment runs, preset
`tiny`) into an artifact root of its own, then creates runs of `audit` with exactly what the form
sends when the user types the run's name (and the root, which the form also shows), and with the
root alone (the UI's Quick run picks the latest run). Each audit must complete through the worker
and reuse every reference model of the run: their task runs end Cached. (A completed `smoke`
deployment run through the UI is the browser test's, tests/e2e.)

**Cancel.** The test creates a run of `smoke` that trains long (200 epochs), waits for a model's
first epoch in the run's log, and cancels the run as the UI's Cancel button does (`set_state`
CANCELLING). The Prefect worker then sends SIGTERM to the flow run's process group, the
model-training worker processes included (`qmu_core.workers`). Regressions (issue 26): ten training
stages logged that their worker "died (killed, or out of memory)", each with a traceback at ERROR,
and ended Failed. And: a `train_model` task logged lines that quoted another task's log line,
timestamp and level included (TensorFlow's import in one task's thread captured the process's
stderr, other tasks' console lines with it, and printed them back through Prefect's `log_prints`).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import prefect_procs as pp
from tests.support import TinyRun


@dataclass
class Served:
    """The module's real server, pool, deployments and worker."""

    api: str
    procs: pp.Processes
    worker_log: Path
    tmp: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`prefect server start`, the `qmu-process` pool, the `smoke` and `audit` deployments, a worker."""
    tmp = tmp_path_factory.mktemp("deployments")
    with pp.processes() as procs:
        api, env = pp.start_server(procs, tmp / "home")
        pp.create_pool(env)
        pp.deploy(env, "smoke", "audit")
        worker_log = tmp / "worker.log"
        pp.start_worker(procs, env, worker_log)
        yield Served(api, procs, worker_log, tmp)


# --------------------------------------------------------------------------- audit of a deployed run

RUN_TIMEOUT = 600.0  # s; an audit of a tiny run takes about 15 s here


@dataclass
class Deployed:
    api: str
    procs: pp.Processes
    worker_log: Path
    root: Path
    name: str  # the audited run's name
    summary: dict[str, Any]  # and its summary.json


def _run(api: str, procs: pp.Processes, log: Path, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return pp.wait_final(api, pp.create_flow_run(api, name, parameters), procs, log, RUN_TIMEOUT)


def _tasks(api: str, run_id: str) -> list[dict[str, Any]]:
    return httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}, timeout=30).json()


@pytest.fixture(scope="module")
def deployed(served: Served, tiny_run: TinyRun) -> Deployed:
    """A completed `tiny` run (the `smoke` deployment's preset) in an artifact root of its own."""
    root = tiny_run.copy_to(served.tmp / "audit-artifacts")
    summary = json.loads(tiny_run.in_copy(root).read_text())
    return Deployed(served.api, served.procs, served.worker_log, root, summary["run"]["name"], summary)


def _audited(deployed: Deployed, parameters: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = _run(deployed.api, deployed.procs, deployed.worker_log, "audit", parameters)
    assert run["state_type"] == "COMPLETED", f"{run['state']}\n{pp.tail(deployed.worker_log)}"
    return run, _tasks(deployed.api, run["id"])


def _check_reused(deployed: Deployed, run: dict[str, Any], tasks: list[dict[str, Any]]) -> None:
    references = sorted(deployed.summary["artifacts"]["reference_models"])
    trained = {t["name"]: t["state_name"] for t in tasks if t["name"].startswith("train ")}
    assert sorted(trained) == [f"train {r}" for r in references], trained  # the run's own reference models
    assert set(trained.values()) == {"Cached"}, trained  # every one reused, none trained again
    (path,) = sorted(deployed.root.glob(f"runs/{run['name']}/summary.json"))
    summary = json.loads(path.read_text())
    assert summary["artifacts"]["reference_models"] == deployed.summary["artifacts"]["reference_models"]
    assert set(summary["models"]) == set(deployed.summary["models"])


def test_audit_with_only_a_run_name_typed_in_reuses_every_reference_model(deployed: Deployed) -> None:
    run, tasks = _audited(deployed, {"source": deployed.name, "artifact_root": str(deployed.root)})
    _check_reused(deployed, run, tasks)
    assert run["name"].startswith(f"audit-{deployed.name}-"), run["name"]


def test_quick_run_audits_the_latest_run(deployed: Deployed) -> None:
    run, tasks = _audited(deployed, {"artifact_root": str(deployed.root)})
    _check_reused(deployed, run, tasks)
    assert run["name"].startswith("audit-latest-"), run["name"]


# --------------------------------------------------------------------------- cancel from the UI

DEPLOYMENT = "smoke"
FIRST_EPOCH_TIMEOUT = 300.0  # s; the flow's process starts, imports TensorFlow, trains: ~40 s here
CANCEL_TIMEOUT = 180.0  # s; the run reached Cancelled in ~18 s before the fix
GONE_TIMEOUT = 60.0  # s; for the flow run's processes to exit after the run is Cancelled
EPOCH = re.compile(r": epoch \d+/\d+")
NESTED = re.compile(r"\d\d:\d\d:\d\d\.\d{3} \| (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\|")


def _show(records: list[dict[str, Any]]) -> str:
    return "\n".join(f"{r['level']:>2} {r['message'][:300]}" for r in records[-60:])


def _wait_for_epoch(api: str, run_id: str, procs: pp.Processes, worker_log: Path) -> list[dict[str, Any]]:
    deadline = time.monotonic() + FIRST_EPOCH_TIMEOUT
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        procs.check_alive()
        records = pp.logs(api, run_id)
        if any(EPOCH.search(r["message"]) for r in records):
            return records
        state = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()["state_type"]
        assert state not in pp.FINAL, f"the run ended {state} before any epoch:\n{_show(records)}"
        time.sleep(1)
    pytest.fail(
        f"no epoch in the run's log after {FIRST_EPOCH_TIMEOUT:.0f} s:\n{_show(records)}\n"
        f"worker log {worker_log}:\n{pp.tail(worker_log)}"
    )


@dataclass
class Cancelled:
    """What the test saw of one cancelled run (module doc)."""

    run: dict[str, Any]
    records: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    left: list[str]  # processes below the Prefect worker once the run is Cancelled and they had time to exit
    temp_files: list[Path]
    took: float  # s from the cancel to the final state


@pytest.fixture(scope="module")
def cancelled(served: Served) -> Cancelled:
    """A run of the smoke deployment through the real server and worker, cancelled mid-training."""
    api, procs, worker_log = served.api, served.procs, served.worker_log
    root = served.tmp / "cancel-artifacts"
    config = {"preset": "tiny", "train": {"epochs": 200}, "run": {"artifact_root": str(root)}}
    run_id = pp.create_flow_run(api, DEPLOYMENT, {"config": config})

    _wait_for_epoch(api, run_id, procs, worker_log)
    cancelled_at = time.monotonic()
    answer = httpx.post(f"{api}/flow_runs/{run_id}/set_state", json={"state": {"type": "CANCELLING"}}, timeout=30)
    assert answer.status_code in (200, 201), answer.text
    run = pp.wait_final(api, run_id, procs, worker_log, CANCEL_TIMEOUT)
    took = time.monotonic() - cancelled_at

    deadline = time.monotonic() + GONE_TIMEOUT
    left = procs.descendants("prefect worker")
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = procs.descendants("prefect worker")
    shown = []
    for p in left:
        with contextlib.suppress(Exception):
            shown.append(f"{p.pid} {' '.join(p.cmdline()[:4])}")
    time.sleep(2)  # the last log lines of the flow's process reach the API
    records = pp.logs(api, run_id)
    tasks = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}, timeout=30).json()
    return Cancelled(run, records, tasks, shown, sorted(root.rglob("*.tmp")), took)


def test_a_cancel_from_the_ui_is_one_line_and_leaves_nothing(cancelled: Cancelled) -> None:
    records, tasks = cancelled.records, cancelled.tasks
    assert cancelled.run["state_type"] == "CANCELLED", f"the run ended {cancelled.run['state_type']}:\n{_show(records)}"

    errors = [r for r in records if r["level"] >= 40]
    assert not errors, f"a cancel logged {len(errors)} line(s) at ERROR or above:\n{_show(errors)}"
    assert not [r for r in records if "died" in r["message"]], _show(records)
    said = [r for r in records if "cancelled" in r["message"].lower() and r["task_run_id"] is None]
    assert len(said) == 1, f"the run's log should say once that it was cancelled:\n{_show(records)}"
    assert said[0]["message"].startswith("run cancelled") and said[0]["level"] in (20, 30), said
    assert not [r for r in records if r["message"].startswith("Finished in state Running")], _show(records)

    states = [(t["name"], t["state_type"], t["state_name"]) for t in tasks]
    assert not [s for s in states if s[1] in ("FAILED", "CRASHED", "RUNNING")], f"stages of a cancelled run: {states}"
    assert [s for s in states if s[1] == "CANCELLED"], f"no stage ended Cancelled: {states}"

    assert not cancelled.left, f"processes left after the cancel: {cancelled.left}"
    assert not cancelled.temp_files, cancelled.temp_files
    print(
        f"\ncancelled run {cancelled.run['name']}: Cancelled {cancelled.took:.1f} s after the cancel; stages "
        f"{sorted({s[2] for s in states})}; {len(records)} log lines"
    )


def test_no_log_line_quotes_another(cancelled: Cancelled) -> None:
    """One line per event, logged by its own task: no record holds another's time-and-level prefix."""
    assert any(EPOCH.search(r["message"]) for r in cancelled.records)  # the run trained
    nested = [r for r in cancelled.records if NESTED.search(r["message"])]
    assert not nested, f"log lines that quote other log lines:\n{_show(nested)}"
