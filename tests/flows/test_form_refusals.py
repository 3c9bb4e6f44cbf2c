"""Must-show: a form value naming a module path as a plug-in is refused without importing anything.

Through the API the Prefect UI uses: a real `prefect server start`, the `smoke` deployment (the
pipeline) and a `prefect worker start`, as in tests/flows/test_deployment_runs.py. The values
are ``os:system`` and a *sentinel* module, importable by every process of the test (on their
PYTHONPATH) that writes a file beside itself when imported; they go in as ``model.kind``, an
attack plug-in (``attack.plugins``) and an unlearning method (``unlearn.methods``), in what each
UI's form sends: V2 sends the changed fields only; V1 also sent every boolean as ``false``.

1. Creating the run with the schema check (every deployment's default): the server answers 409
   ("Validation failed for field 'config.model.kind'. Failure reason: 'os:system' is not one of
   [...]", Prefect 3.8.8), naming the value, and creates no run.
2. Creating it without the check (``enforce_parameter_schema: false``, what an API client may
   ask): the worker starts the flow's process, which refuses the parameters before any stage:
   the run ends Failed with a message naming each value.

Neither the server, the worker, the flow's process nor this process imports the sentinel: its
file never appears, and it is not in this process's `sys.modules`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import prefect_procs as pp

SENTINEL = "qmu_sentinel_plugin"
SOURCE = """import os, pathlib
pathlib.Path(__file__).with_name(f"imported-{os.getpid()}").write_text("imported")
def boom(*args, **kwargs):
    raise SystemExit("boom")
"""
VALUES = ("os:system", f"{SENTINEL}:boom", SENTINEL)
RUN_TIMEOUT = 300.0  # s; the flow's process starts and refuses its parameters in about 10 s here


@dataclass
class Served:
    api: str
    procs: pp.Processes
    worker_log: Path
    sentinel: Path  # the sentinel module's directory


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server, the `smoke` deployment and a worker, every process with the sentinel on its path."""
    tmp = tmp_path_factory.mktemp("refusals")
    sentinel = tmp / "sentinel"
    sentinel.mkdir()
    (sentinel / f"{SENTINEL}.py").write_text(SOURCE)
    path = os.pathsep.join(p for p in (str(sentinel), os.environ.get("PYTHONPATH", "")) if p)
    sys.path.insert(0, str(sentinel))  # this process could import it too
    try:
        with pp.processes() as procs:
            api, env = pp.start_server(procs, tmp / "home", PYTHONPATH=path)
            pp.create_pool(env)
            pp.deploy(env, "smoke")
            worker_log = tmp / "worker.log"
            pp.start_worker(procs, env, worker_log)
            yield Served(api, procs, worker_log, sentinel)
    finally:
        sys.path.remove(str(sentinel))


def _imported(served: Served) -> list[str]:
    """What shows the sentinel was imported: its files (any process), its module here."""
    return [p.name for p in served.sentinel.glob("imported-*")] + [m for m in sys.modules if m == SENTINEL]


def _config(value: str, field: str, ui: str) -> dict[str, Any]:
    """The form's `config` with `value` in `field` (``model.kind``, ``attack.plugins``, ``unlearn.methods``)."""
    config: dict[str, Any] = {"preset": "tiny"}
    if ui == "v1":  # the old V1 form sent every boolean, untouched, as false
        config |= {"model": {"reupload": False}, "attack": {"lira_fixed_variance": False}}
        config["hardware"] = {"measure_references": False}
    section, _, name = field.partition(".")
    config.setdefault(section, {})[name] = value if field == "model.kind" else [value]
    return config


def _post(api: str, body: dict[str, Any]) -> httpx.Response:
    url = f"{api}/deployments/{pp.deployment_id(api, 'smoke')}/create_flow_run"
    for _ in range(5):  # 503: the server was busy (as Prefect's own client does, ask again)
        answer = httpx.post(url, json=body, timeout=30)
        if answer.status_code != 503:
            return answer
        time.sleep(1.0)
    return answer


def _runs_with(api: str, value: str) -> list[str]:
    """The flow runs whose parameters hold `value` (the deployment's schedule makes runs of its own)."""
    runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=30).json()
    return [r["name"] for r in runs if value in json.dumps(r["parameters"])]


@pytest.mark.parametrize("ui", ["v1", "v2"])
@pytest.mark.parametrize("field", ["model.kind", "attack.plugins", "unlearn.methods"])
def test_the_servers_schema_check_refuses_a_module_path(served: Served, field: str, ui: str) -> None:
    for value in VALUES:
        answer = _post(served.api, {"parameters": {"config": _config(value, field, ui)}})
        assert answer.status_code == 409, (value, answer.status_code, answer.text)
        assert "Validation failed for field 'config." in answer.text and value in answer.text, answer.text
        assert not _runs_with(served.api, value)  # no run was created
    assert not _imported(served)


def test_without_the_schema_check_the_flows_process_refuses_it_before_any_stage(served: Served) -> None:
    """One run carries all three values (a V1 payload); its process validates the config first."""
    config = _config("os:system", "model.kind", "v1")
    config["attack"]["plugins"] = [f"{SENTINEL}:boom"]
    config["unlearn"] = {"methods": [SENTINEL]}
    answer = _post(served.api, {"parameters": {"config": config}, "enforce_parameter_schema": False})
    assert answer.status_code == 201, answer.text  # the server took it unchecked
    run = pp.wait_final(served.api, str(answer.json()["id"]), served.procs, served.worker_log, RUN_TIMEOUT)
    message = str(run["state"]["message"])
    assert run["state_type"] == "FAILED", f"{run['state']}\n{pp.tail(served.worker_log)}"
    assert "a module path is never imported" in message, message  # and what to do instead
    for value in ("os:system", f"{SENTINEL}:boom", SENTINEL):
        assert repr(value) in message or f'"{value}"' in message, message
    tasks = httpx.post(f"{served.api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run["id"]]}}}).json()
    assert tasks == [], [t["name"] for t in tasks]  # refused before any stage
    assert not _imported(served), pp.tail(served.worker_log)
    print(f"\nthe refused run's message: {message}")
