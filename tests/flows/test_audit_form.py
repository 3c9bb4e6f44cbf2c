"""The `audit` deployment as a newcomer uses it in the Prefect UI.

The form's parameters are plain strings (a run name, a model path, or nothing for Quick run),
checked against the flow's parameter schema as the server checks them, then run the way a
worker runs a deployment's flow run (`Flow.validate_parameters` on the JSON parameters, then
the call). The run's reference models come from the cache: no model is trained again.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
from prefect.utilities.schema_tools.validation import validate

from flows.audit import qmu_audit
from qmu_core.attacks.subjects import latest_run, resolve_many
from qmu_core.errors import ArtifactError
from tests.support import TinyRun

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture(scope="module")
def root(tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's `tiny` run's artifact root: the audits below write into it."""
    return tiny_run.copy_to(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="module")
def run(tiny_run: TinyRun, root: Path) -> dict[str, Any]:
    """The `tiny` pipeline's run in `root`: its summary.json."""
    summary = tiny_run.summary
    summary["path"] = str(tiny_run.in_copy(root))
    return summary


def _form_run(parameters: dict[str, Any]) -> Any:
    """Run `qmu_audit` as a deployment run with these form parameters.

    First the server's JSON-schema check, then what the worker does (validate the JSON
    parameters, call the flow).
    """
    schema = qmu_audit.parameters.model_dump()
    assert validate(parameters, schema, raise_on_error=False) == [], parameters
    return qmu_audit(**qmu_audit.validate_parameters(parameters), return_state=True)


def _summary(state: Any) -> dict[str, Any]:
    assert state.is_completed(), state.message
    return json.loads(Path(state.result()).read_text())


def _model_stages(flow_run_id: Any, keys: set[str]) -> dict[str, tuple[str, str]]:
    """The verdicts and task-run states of the flow run's model stages, by model key.

    As ``{model key: (its "stage model" log line's verdict, its task run's state name)}``. Logs and
    states arrive asynchronously: poll until every key of `keys` has a final state.
    """
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            states = {r.id: r.state for r in runs}
            found: dict[str, tuple[str, str]] = {}
            for log in logs:
                if log.message.startswith("stage model ") and log.task_run_id is not None:
                    key, _, verdict = log.message.removeprefix("stage model ").partition(": ")
                    state = states.get(log.task_run_id)
                    final = state is not None and state.is_final()
                    found[key] = (verdict.split(" ")[0], state.name if final and state else "?")
            done = keys <= set(found) and all(s != "?" for _, s in found.values())
            if done or time.monotonic() > deadline:
                return found
            time.sleep(0.5)


def _reference_keys(summary: dict[str, Any]) -> set[str]:
    return {Path(p).stem for p in summary["artifacts"]["reference_models"].values()}


@pytest.fixture(scope="module")
def by_name(run: dict[str, Any], root: Path) -> tuple[Any, dict[str, Any]]:
    """What the form sends when only the run's name is typed in."""
    state = _form_run({"source": run["run"]["name"], "artifact_root": str(root)})
    return state, _summary(state)


def test_a_run_name_audits_the_run_reusing_every_reference_model(
    run: dict[str, Any], by_name: tuple[Any, dict[str, Any]]
) -> None:
    state, summary = by_name
    assert set(summary["models"]) == set(run["models"])
    # the audit lists the run's very reference models
    assert summary["artifacts"]["reference_models"] == run["artifacts"]["reference_models"]
    assert summary["config"]["attack"] == run["config"]["attack"]
    keys = _reference_keys(run)
    stages = _model_stages(state.state_details.flow_run_id, keys)
    assert set(stages) == keys, stages  # the audit runs no other model stage
    assert all(stage == ("cached", "Cached") for stage in stages.values()), stages
    # the audit's run (and folder) is named after what it audited, and tagged like the run
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    assert flow_run.name.startswith(f"audit-{run['run']['name']}-"), flow_run.name
    assert summary["run"]["folder"] == flow_run.name
    assert {"preset:tiny", "model:basic_qnn", "request:class"} <= set(flow_run.tags), flow_run.tags


def test_overrides_change_the_runs_config_and_keep_its_reference_models(run: dict[str, Any], root: Path) -> None:
    state = _form_run(
        {"source": run["run"]["name"], "overrides": ["attack.threat_model=labels"], "artifact_root": str(root)}
    )
    summary = _summary(state)
    assert summary["audit"]["threat_model"] == "labels" and summary["config"]["train"] == run["config"]["train"]
    stages = _model_stages(state.state_details.flow_run_id, _reference_keys(run))
    assert all(stage == ("cached", "Cached") for stage in stages.values()), stages


def test_a_bad_override_is_one_message_in_the_forms_words(run: dict[str, Any], root: Path) -> None:
    from flows.audit import audit_subject
    from qmu_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"overrides: 'attack\.shadows=16'.*Known here: n_shadow") as err:
        audit_subject(run["run"]["name"], str(root), ["attack.shadows=16"])
    assert "--set" not in str(err.value)


def test_the_run_folder_and_the_summary_path_name_the_same_run(run: dict[str, Any], root: Path) -> None:
    """What the files list shows works as well as the name (resolved only: the flow is the same)."""
    folder = Path(run["path"]).parent
    for source in (str(folder), run["path"], folder.name):
        subject = resolve_many([source], root=root)
        assert set(subject.models) == set(run["models"]), source
        assert subject.config.attack.model_dump(mode="json") == run["config"]["attack"]


@pytest.fixture(scope="module")
def by_model_path(run: dict[str, Any], root: Path) -> tuple[Any, dict[str, Any]]:
    """A model path pasted from the run's summary.json."""
    state = _form_run({"source": run["artifacts"]["after_ga"], "artifact_root": str(root)})
    return state, _summary(state)


def test_a_model_path_audits_that_model_with_its_runs_reference_models(
    run: dict[str, Any], by_model_path: tuple[Any, dict[str, Any]]
) -> None:
    state, summary = by_model_path
    assert list(summary["models"]) == ["after_ga"]
    assert summary["artifacts"]["reference_models"] == run["artifacts"]["reference_models"]
    # the same frozen attacks on the same records: the run's numbers
    assert summary["models"]["after_ga"]["attacks"] == run["models"]["after_ga"]["attacks"]
    stages = _model_stages(state.state_details.flow_run_id, _reference_keys(run))
    assert all(stage == ("cached", "Cached") for stage in stages.values()), stages


def test_several_model_paths_make_one_audit(run: dict[str, Any], root: Path) -> None:
    paths = f"{run['artifacts']['before']}, {run['artifacts']['oracle']}"
    subject = resolve_many([p.strip() for p in paths.split(",")], root=root)
    assert list(subject.models) == ["before", "oracle"]
    assert subject.config.attack.model_dump(mode="json") == run["config"]["attack"]


def test_sources_made_with_other_reference_models_are_refused(run: dict[str, Any], root: Path) -> None:
    """A run of the same models but another attack section (8 reference models, not 2) is refused.

    One audit cannot score both against the same reference models.
    """
    other = json.loads(Path(run["path"]).read_text())
    other["config"]["attack"]["n_shadow"] = 8
    # in the run's root: summary.json names its models relative to the root it lies in
    path = root / "runs" / ".other-attack" / "summary.json"
    path.parent.mkdir(parents=True)
    try:
        path.write_text(json.dumps(other))
        with pytest.raises(ArtifactError, match=r"attack\.n_shadow: 2 vs 8.*Audit them separately") as err:
            resolve_many([run["path"], str(path)], root=root)
    finally:
        shutil.rmtree(path.parent)
    assert "\n" not in str(err.value)


def test_a_bad_name_fails_in_one_line_listing_the_runs(run: dict[str, Any], root: Path, tmp_path: Path) -> None:
    state = _form_run({"source": "no-such-run", "artifact_root": str(root)})
    assert state.is_failed()
    message = str(state.message)
    assert "\n" not in message
    assert f"No run named 'no-such-run' in {root / 'runs'}" in message
    assert Path(run["path"]).parent.name in message and "Type one of those names" in message
    with pytest.raises(ArtifactError, match="it has no runs yet") as err:
        resolve_many(["no-such-run"], root=tmp_path)
    assert "\n" not in str(err.value) and str(tmp_path / "runs") in str(err.value)


def test_quick_run_audits_the_latest_pipeline_run_not_an_audit(
    run: dict[str, Any], root: Path, by_model_path: tuple[Any, dict[str, Any]]
) -> None:
    """No source (the UI's Quick run; here with the test's root): the newest pipeline run.

    Even when an audit's summary (of one model) is newer.
    """
    audit_summary = Path(by_model_path[0].result())
    future = time.time() + 60
    os.utime(audit_summary, (future, future))
    assert latest_run(root) == Path(run["path"])
    summary = _summary(_form_run({"artifact_root": str(root)}))
    assert set(summary["models"]) == set(run["models"])
    assert summary["artifacts"]["reference_models"] == run["artifacts"]["reference_models"]


def test_quick_run_without_any_run_says_what_to_type(tmp_path: Path) -> None:
    state = _form_run({"artifact_root": str(tmp_path)})
    assert state.is_failed()
    message = str(state.message)
    assert "\n" not in message
    assert f"No source given and no pipeline run to default to in {tmp_path / 'runs'}" in message
    assert "Type a run name" in message


def test_the_form_schema_explains_every_parameter_with_examples() -> None:
    schema = qmu_audit.parameters.model_dump()
    assert list(schema["properties"]) == ["source", "overrides", "artifact_root"]
    assert schema["required"] == []  # Quick run needs nothing
    for name, prop in schema["properties"].items():
        assert prop.get("description") and prop.get("examples"), name
    assert schema["properties"]["source"]["type"] == "string"
    assert schema["properties"]["overrides"]["items"] == {"type": "string"}
    assert validate({"source": "x", "overrides": ["attack.threat_model=labels"]}, schema) == []
    assert validate({"source": {"before": {"stage": "model"}}}, schema) != []
