"""The real `tiny` pipeline on a URL artifact root (``file://``), reused by a second machine.

The second machine (a fresh, empty mirror) reuses every stage from the shared root. One unlearning
method and one reference model: every kind of stage, each written to and read from the URL root,
with less to train.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.pipeline import qmu_pipeline
from qmu_core import storage, workers
from qmu_core.config import preset

pytestmark = pytest.mark.usefixtures("prefect_api")


def _task_states(flow_run_id: object) -> dict[str, str]:
    """Final task-run states of a flow run (Prefect records them asynchronously: poll)."""
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            if (runs and all(r.state and r.state.is_final() for r in runs)) or time.monotonic() > deadline:
                return {f"{r.name}~{r.id.hex[:8]}": r.state.name for r in runs if r.state is not None}
            time.sleep(0.5)


def _run_on(url: str, mirror: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    """One pipeline run as a machine whose mirror is `mirror` (worker processes started afresh)."""
    workers.shutdown()  # workers inherit QMU_ARTIFACT_CACHE when they start
    monkeypatch.setenv(storage.CACHE_ENV, str(mirror))
    try:
        cfg = preset("tiny", run={"artifact_root": url}, unlearn={"methods": ["ga"]}, attack={"n_shadow": 1})
        state = qmu_pipeline(cfg, return_state=True)
    finally:
        workers.shutdown()
    assert state.is_completed(), state.message
    return state.result(), _task_states(state.state_details.flow_run_id)


def test_a_url_root_is_shared_between_machines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    url = f"file://{shared}"
    summary_url, states = _run_on(url, tmp_path / "mirror-a", monkeypatch)
    assert all(s == "Completed" for s in states.values()), states
    # the summary is shown by its URL and lies on the shared root, with everything it names
    assert summary_url.startswith(f"{url}/runs/") and summary_url.endswith("/summary.json")
    summary_file = shared / summary_url.removeprefix(f"{url}/")
    summary = json.loads(summary_file.read_text())
    # paths relative to the root: the URL root's own files, wherever it is mounted
    assert f"{url}/{summary['report_md']}" == summary_url.replace("summary.json", "report.md")
    listed = [p for v in summary["artifacts"].values() for p in (v.values() if isinstance(v, dict) else [v])]
    for rel in [*listed, summary["report_md"], summary["plot_png"], summary["roc_png"], summary["deletion_md"]]:
        assert storage.in_root(summary_url, rel) == f"{url}/{rel}" and (shared / rel).is_file(), rel
    assert not [p for p in shared.rglob("*") if storage.temp_owner(p) is not None or p.name.endswith(".lock")]

    # another machine: nothing local, everything reused from the URL root
    second_url, again = _run_on(url, tmp_path / "mirror-b", monkeypatch)
    stages = {k: v for k, v in again.items() if not k.startswith("publish report~")}
    assert len(stages) == 10 + 3 * 1 + 2 * 1 and set(stages.values()) == {"Cached"}, again  # 1 method, 1 reference
    assert second_url != summary_url and (shared / second_url.removeprefix(f"{url}/")).is_file()
    # it downloaded what publishing the report read, into its own mirror
    assert (tmp_path / "mirror-b").is_dir() and any((tmp_path / "mirror-b").rglob("metrics-v*.parquet"))
