"""What the Prefect UI shows of a run.

The flow run's own artifacts (report with its plots, rounded tables, files) and progress bars that
reach 100 %, read back through the client from a real tiny pipeline under a Prefect test server.
"""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import flow, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import Artifact

from flows.hardware import qmu_hardware
from qmu_core.config import preset
from qmu_core.report import rounded
from qmu_prefect.log import ProgressBar, finishing_progress, progress
from tests.support import TinyRun

PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("prefect_api")


def _artifacts(flow_run_id: UUID) -> list[Artifact]:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


def _settled(flow_run_id: UUID, done: Any, timeout: float = 30.0) -> list[Artifact]:
    """The flow run's artifacts once `done(artifacts)` holds (updates from callbacks may trail)."""
    deadline = time.monotonic() + timeout
    while True:
        found = _artifacts(flow_run_id)
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@pytest.fixture(scope="module")
def root(tiny_run_here: TinyRun) -> Path:
    """The artifact root of a `tiny` run whose flow run is on this session's test server (read only)."""
    return tiny_run_here.root


@pytest.fixture(scope="module")
def run(tiny_run_here: TinyRun) -> tuple[dict[str, Any], UUID]:
    """That `tiny` run: its summary and its flow run."""
    return tiny_run_here.summary, tiny_run_here.flow_run_id


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


def test_the_report_tables_and_files_belong_to_the_flow_run(run: tuple[dict[str, Any], UUID], root: Path) -> None:
    summary, flow_run_id = run
    found = {a.key: a for a in _artifacts(flow_run_id) if a.type != "progress"}
    expected = {"qmu-report", "qmu-comparison", "qmu-attacks", "qmu-deletion", "qmu-files"}
    assert expected <= set(found), sorted(found)
    for key in expected:
        assert found[key].flow_run_id == flow_run_id and found[key].task_run_id is None, (key, found[key])

    # the comparison table: one row per metric, a column per phase, numbers rounded to 3 decimals
    rows = json.loads(found["qmu-comparison"].data)
    assert [r["metric"] for r in rows][:2] == ["retain test acc", "forget test acc"]
    assert set(rows[0]) == {"metric", *summary["models"]} and "oracle" in rows[0]
    numbers = [v for r in rows for k, v in r.items() if k != "metric" and v is not None]
    assert numbers and all(isinstance(v, int | float) and _decimals(v) <= 3 for v in numbers), numbers
    assert rows[0]["oracle"] == rounded(summary["models"]["oracle"]["retain_test_acc"])
    attacks = json.loads(found["qmu-attacks"].data)
    assert all(_decimals(v) <= 3 for r in attacks for v in r.values() if isinstance(v, float))
    assert all(re.fullmatch(r"\[(n/a|-?\d+\.\d{3}), (n/a|-?\d+\.\d{3})\]", r["auc_ci"]) for r in attacks)

    # the report embeds its plots as PNG data URIs (what the UI renders; it cannot open file://)
    report = found["qmu-report"].data
    assert report.startswith("# QMU ") and "| MIA AUC |" in report
    images = re.findall(r"!\[([^\]]+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", report)
    assert [caption for caption, _ in images] == ["Before / after / oracle", "Membership ROC"]
    for _, data in images:
        assert base64.b64decode(data).startswith(PNG)
    assert base64.b64decode(images[0][1]) == (root / summary["plot_png"]).read_bytes()  # relative to the root
    deletion = found["qmu-deletion"].data
    assert "data:image/png;base64," in deletion and "| GA |" in deletion
    # no image left that the UI cannot load: every image of both reports is a data URI (deletion.md
    # on disk links deletion.png by its name; the UI's copy replaces that link, not adds a copy)
    for text in (report, deletion):
        targets = re.findall(r"!\[[^\]]*\]\(([^)]*)\)", text)
        assert targets and all(t.startswith("data:image/png;base64,") for t in targets), [t[:40] for t in targets]
    assert len(re.findall(r"!\[", deletion)) == 1

    # every file of the run is listed, linked (file://), and the ones the UI shows link to their page
    files = found["qmu-files"].data
    listed = [p for v in summary["artifacts"].values() for p in (v.values() if isinstance(v, dict) else [v])]
    for path in [*listed, summary["report_md"], summary["plot_png"], summary["roc_png"], summary["deletion_png"]]:
        assert f"]({(root / path).resolve().as_uri()})" in files, path
    assert "summary.json" in files and "index.html" in files
    assert f"[open](/artifacts/artifact/{found['qmu-report'].id})" in files
    assert f"[open](/artifacts/artifact/{found['qmu-deletion'].id})" in files


def test_a_run_is_named_and_tagged_by_what_ran(run: tuple[dict[str, Any], UUID], root: Path) -> None:
    summary, flow_run_id = run
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(flow_run_id)
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    key = summary["run"]["name"].split("-")[2]
    assert re.fullmatch(r"tiny-class4-[0-9a-f]{6}-[a-z0-9]+(-[a-z0-9]+)*", flow_run.name), flow_run.name
    assert summary["run"]["name"] == flow_run.name and re.fullmatch(r"[0-9a-f]{6}", key)
    assert summary["run"]["folder"] == flow_run.name  # a safe name is its own folder
    assert summary["report_md"] == f"runs/{flow_run.name}/report.md"
    assert {"preset:tiny", "model:basic_qnn", "request:class"} <= set(flow_run.tags), flow_run.tags
    names = {t.name for t in tasks}
    references = list(summary["artifacts"]["reference_models"])
    expected = {"split data", "train target", "train oracle", "unlearn ga", "unlearn ssd", "outputs before"}
    expected |= {f"train {r}" for r in references} | {f"outputs {r}" for r in references}
    assert expected <= names, sorted(names)
    assert not [n for n in names if re.fullmatch(r"\w+-[0-9a-f]{3}", n)], sorted(names)  # no `train_model-a05`


def test_the_run_records_what_differs_from_its_preset(run: tuple[dict[str, Any], UUID], root: Path) -> None:
    summary, _ = run
    assert summary["changed_from_preset"] == {"run.artifact_root": {"value": str(root), "preset": "data/artifacts"}}
    report = (root / summary["report_md"]).read_text()
    assert "## Settings changed from preset `tiny`" in report and "| `run.artifact_root` |" in report


def test_the_run_folder_opens_in_a_browser(run: tuple[dict[str, Any], UUID], root: Path) -> None:
    summary, _ = run
    index = root / summary["index_html"]
    page = index.read_text()
    images = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert {"comparison.png", "roc.png", "deletion.png"} <= set(images), images
    for name in images:  # relative to the folder, as a browser opening index.html resolves them
        assert (index.parent / name).read_bytes().startswith(PNG)
    links = re.findall(r'<a href="([^"]+)"', page)
    assert {"summary.json", "report.md", "deletion.md"} <= set(links) and all(
        (index.parent / n).is_file() for n in links
    )


def test_progress_bars_reach_100(run: tuple[dict[str, Any], UUID]) -> None:
    summary, flow_run_id = run

    def complete(found: list[Artifact]) -> bool:
        bars = [a for a in found if a.type == "progress"]
        return bool(bars) and all(a.data == 100 for a in bars)

    bars = {a.key: a for a in _settled(flow_run_id, complete) if a.type == "progress"}
    references = list(summary["artifacts"]["reference_models"])
    per_model = {
        "qmu-train-target",
        "qmu-train-oracle",
        *(f"qmu-unlearn-{m}" for m in summary["config"]["unlearn"]["methods"]),
    }
    per_model |= {f"qmu-train-{name}" for name in references}
    assert per_model <= set(bars), sorted(bars)
    for key in per_model:  # a bar per model, on the task run that trained it
        assert bars[key].task_run_id is not None and bars[key].data == 100, bars[key]
    flow_bar = bars["qmu-reference-models"]  # the flow's own bar over the reference models
    assert flow_bar.task_run_id is None and flow_bar.data == 100
    assert flow_bar.description == f"reference models trained {len(references)}/{len(references)}"


def test_the_hardware_report_belongs_to_its_flow_run(tiny_run: TinyRun, tmp_path: Path) -> None:
    root = tiny_run.copy_to(tmp_path / "root")  # the run's models, in a root this test writes to
    hardware = {"sampler": {"kind": "emulator", "noise": "none"}, "records_per_group": 4, "repetitions": 100}
    state = qmu_hardware(preset("tiny", run={"artifact_root": str(root)}, hardware=hardware), return_state=True)
    assert state.is_completed(), state.message
    path = Path(state.result())
    found = {a.key: a for a in _artifacts(state.state_details.flow_run_id) if a.task_run_id is None}
    assert {"qmu-hardware", "qmu-hardware-report", "qmu-hardware-files", "qmu-reference-models"} <= set(found)
    rows = json.loads(found["qmu-hardware"].data)
    assert rows == [{k: rounded(v) for k, v in r.items()} for r in json.loads(path.read_text())["rows"]]
    assert any(_decimals(v) == 3 for r in rows for v in r.values() if isinstance(v, float))
    report = found["qmu-hardware-report"].data
    (data,) = re.findall(r"\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", report)
    assert base64.b64decode(data) == path.with_suffix(".png").read_bytes()
    listing = found["qmu-hardware-files"].data
    assert f"]({path.resolve().as_uri()})" in listing and ".parquet)" in listing


def test_progress_is_throttled_and_finished_with_the_stage() -> None:
    @task
    def epochs(finish: bool) -> str:
        report = progress("unit bar")
        if finish:
            with finishing_progress():
                bar = progress("unit finished")
                bar(1, 10, {"loss": 1.0})
        for epoch in range(1, 6):  # 5 of 10 epochs within a second: only the first reaches the API
            report(epoch, 10, {"loss": 1.0 / epoch})
        return "ok"

    @flow
    def bars() -> str:
        return epochs(True)

    state = bars(return_state=True)
    assert state.is_completed()
    found = {a.key: a for a in _artifacts(state.state_details.flow_run_id)}
    assert found["qmu-unit-bar"].data == 10 and found["qmu-unit-bar"].description == "unit bar: 1/10"
    assert (
        found["qmu-unit-finished"].data == 100
        and found["qmu-unit-finished"].description == "unit finished: done at 1/10"
    )


def test_progress_outside_prefect_needs_no_api() -> None:
    report = progress("no api")
    for epoch in (1, 2):
        report(epoch, 2, {"loss": 0.5})
    assert ProgressBar("no api").id is None


def test_rounding_for_the_ui() -> None:
    assert rounded(0.123456) == 0.123 and rounded(12.0) == 12 and isinstance(rounded(12.0), int)
    assert rounded(True) is True and rounded(float("nan")) is None and rounded(0.000123456) == 0.000123
    assert rounded([0.11111, None]) == [0.111, None] and rounded("x") == "x"
