"""The `audit` deployment run through the API as its form sends it: only a run's name typed in.

Everything is real: `prefect server start` in a temporary PREFECT_HOME, the `qmu-process` pool,
`QMU_REPO=<repo> prefect --no-prompt deploy --name smoke --name audit`, a `prefect worker start`
subprocess. The test runs `smoke` into a temporary artifact root, then creates runs of `audit` with
exactly what the form sends when the user types the run's name (and the root, which the form also
shows), and with the root alone (the UI's Quick run picks the latest run). Each audit must complete
and reuse every reference model of the run: their task runs end Cached.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import prefect_procs as pp

RUN_TIMEOUT = 600.0  # s; a tiny run takes about a minute here, an audit of it less


@dataclass
class Deployed:
    api: str
    procs: pp.Processes
    worker_log: Path
    root: Path
    run: dict[str, Any]  # the smoke run's flow run
    summary: dict[str, Any]  # and its summary.json


def _run(api: str, procs: pp.Processes, log: Path, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    created = httpx.post(
        f"{api}/deployments/{pp.deployment_id(api, name)}/create_flow_run", json={"parameters": parameters}, timeout=30
    )
    assert created.status_code == 201, created.text  # the server's JSON-schema check passed
    return pp.wait_final(api, created.json()["id"], procs, log, RUN_TIMEOUT)


def _tasks(api: str, run_id: str) -> list[dict[str, Any]]:
    return httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}, timeout=30).json()


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    tmp = tmp_path_factory.mktemp("audit-deployment")
    with pp.processes() as procs:
        api, env = pp.start_server(procs, tmp / "home")
        pp.create_pool(env)
        pp.deploy(env, "smoke", "audit")
        worker_log = tmp / "worker.log"
        pp.start_worker(procs, env, worker_log)
        root = tmp / "artifacts"
        config = {"preset": "tiny", "run": {"artifact_root": str(root)}}
        run = _run(api, procs, worker_log, "smoke", {"config": config})
        assert run["state_type"] == "COMPLETED", f"{run['state']}\n{pp.tail(worker_log)}"
        (path,) = sorted(root.glob(f"runs/{run['name']}/summary.json"))
        yield Deployed(api, procs, worker_log, root, run, json.loads(path.read_text()))


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
    run, tasks = _audited(deployed, {"source": deployed.run["name"], "artifact_root": str(deployed.root)})
    _check_reused(deployed, run, tasks)
    assert run["name"].startswith(f"audit-{deployed.run['name']}-"), run["name"]


def test_quick_run_audits_the_latest_run(deployed: Deployed) -> None:
    run, tasks = _audited(deployed, {"artifact_root": str(deployed.root)})
    _check_reused(deployed, run, tasks)
    assert run["name"].startswith("audit-latest-"), run["name"]
