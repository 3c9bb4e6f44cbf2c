"""The report repeats every warning of the run (the config's and every artifact's, cached too).

Its run folder names files relative to the artifact root and appears whole or not at all.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from qmu_core import artifacts, housekeeping, report, storage
from qmu_core.artifacts import Output
from qmu_core.config import preset
from qmu_core.errors import ArtifactError
from qmu_core.provenance import AuditFacts


def test_run_warnings_collect_config_and_artifact_warnings(tmp_path: Path) -> None:
    frame = pd.DataFrame({"model_id": ["m"], "phase": ["before"], "attack": [""], "metric": ["acc"], "value": [1.0]})
    ref = artifacts.plan("metrics", {"seed": 1}, root=tmp_path)
    artifacts.write_output(Output(frame, warnings=("3 records have a constant image",)), ref, {"seed": 1})
    assert artifacts.read_metadata(ref).warnings == ["3 records have a constant image"]
    small_pool = preset("tiny", data={"n_shadow_pool": 10}, attack={"reference": "disjoint"})
    found = report.run_warnings(small_pool, {"metrics": ref, "outputs": {"before": ref}})
    assert found[-1] == "3 records have a constant image" and len(found) == 2  # listed once
    assert "reference models" in found[0]
    assert report.run_warnings(preset("tiny"), {"metrics": ref}) == ["3 records have a constant image"]


def test_an_unlearned_model_that_lost_the_retained_classes_is_flagged() -> None:
    models = {
        "before": {"retain_test_acc": 0.90},
        "after_ga": {"retain_test_acc": 0.20},
        "after_ok": {"retain_test_acc": 0.85},
        "oracle": {"retain_test_acc": 0.92},
    }
    (message,) = report.unlearning_warnings(models)
    assert message.startswith("after_ga: retained-test accuracy 0.200 is 0.720 below the oracle's 0.920")
    assert report.unlearning_warnings({"after_ga": {"retain_test_acc": 0.2}}) == []  # no oracle, no verdict


# ----------------------------------------------------------------- the run folder: relocatable, whole or absent


def _published_inputs(root: Path) -> dict[str, artifacts.ArtifactRef]:
    """The least `report.publish` needs: metrics (with ROC points) and scores (with their facts)."""
    table = pd.DataFrame(
        {
            "model_id": ["m", "m"],
            "phase": ["before", "before"],
            "attack": ["", "lira_online"],
            "metric": ["retain_test_acc", "auc"],
            "value": [0.9, 0.6],
        }
    )
    roc = pd.DataFrame({"phase": ["before"] * 2, "attack": ["lira_online"] * 2, "fpr": [0.0, 1.0], "tpr": [0.0, 1.0]})
    metrics = artifacts.plan("metrics", {"s": 1}, root=root)
    artifacts.write_output(Output(table, companions={"roc": roc}), metrics, {"s": 1})
    scores = pd.DataFrame(
        {
            "phase": ["before"],
            "model_id": ["m"],
            "sample_id": [1],
            "role": ["target_train"],
            "is_forget": [False],
            "attack": ["lira_online"],
            "score": [0.5],
            "is_member": [True],
        }
    )
    facts = AuditFacts(
        threat_model="probs",
        reference="disjoint",
        n_reference=2,
        protocol="shadow",
        thresholds={"lira_online": 0.5},
        not_applicable={},
    )
    ref = artifacts.plan("mia_scores", {"s": 1}, root=root)
    artifacts.write_output(Output(scores, facts=facts), ref, {"s": 1})
    return {"metrics": metrics, "mia_scores": ref}


def test_the_summary_names_files_relative_to_its_root(tmp_path: Path) -> None:
    refs = _published_inputs(tmp_path / "a")
    published = report.publish(refs, run_name="r1", config=preset("tiny"), wall_time_s=1.0)
    assert published.summary_path == tmp_path / "a" / "runs" / "r1" / "summary.json"
    summary = json.loads(Path(published.summary_path).read_text())
    assert summary["artifacts"]["metrics"] == refs["metrics"].rel == summary["metrics_parquet"]
    assert summary["report_md"] == "runs/r1/report.md" and summary["plot_png"] == "runs/r1/comparison.png"
    assert str(tmp_path) not in json.dumps(summary)  # nothing names where the root was
    shutil.move(tmp_path / "a", tmp_path / "b")  # a moved root: every file resolves in it
    moved = tmp_path / "b" / "runs" / "r1" / "summary.json"
    for key in ("report_md", "index_html", "plot_png", "roc_png", "metrics_parquet", "scores_parquet"):
        assert Path(storage.in_root(moved, summary[key])).is_file(), key
    assert sorted(p.name for p in (tmp_path / "b" / "runs").iterdir()) == ["r1"]  # no temporary folder left


def test_a_report_that_fails_midway_leaves_no_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Disk full while writing summary.json, the last of the run's files, leaves no run folder.

    Before, the run's folder kept the plots, report.md and index.html under its final name with no summary.
    """
    refs = _published_inputs(tmp_path)

    def disk_full(path: Path, summary: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("qmu_core.report.folder.write_summary", disk_full)
    with pytest.raises(OSError, match="No space left"):
        report.publish(refs, run_name="r1", config=preset("tiny"), wall_time_s=1.0)
    assert not (tmp_path / "runs" / "r1").exists()
    assert list((tmp_path / "runs").iterdir()) == []  # the temporary folder went too
    assert "runs: 0" in housekeeping.listing(tmp_path)
    monkeypatch.undo()
    published = report.publish(refs, run_name="r1", config=preset("tiny"), wall_time_s=1.0)
    assert Path(published.summary_path).parent.name == "r1"  # the name was never taken


def test_two_runs_of_one_name_get_two_folders(tmp_path: Path) -> None:
    refs = _published_inputs(tmp_path)
    one = report.publish(refs, run_name="same", config=preset("tiny"), wall_time_s=1.0)
    two = report.publish(refs, run_name="same", config=preset("tiny"), wall_time_s=1.0)
    assert [Path(p.summary_path).parent.name for p in (one, two)] == ["same", "same-2"]
    assert json.loads(Path(two.summary_path).read_text())["report_md"] == "runs/same-2/report.md"


def test_stored_paths_resolve_below_the_root_the_summary_lies_in(tmp_path: Path) -> None:
    """New summaries store root-relative paths; older ones absolute paths or URLs of wherever the root was.

    Both resolve below the root the summary.json itself lies in.
    """
    summary = tmp_path / "copy" / "runs" / "r1" / "summary.json"
    assert storage.run_root(summary) == tmp_path / "copy"
    assert storage.in_root(summary, "model/m.parquet") == tmp_path / "copy" / "model" / "m.parquet"
    assert storage.in_root(summary, "/elsewhere/root/model/m.parquet") == tmp_path / "copy" / "model" / "m.parquet"
    assert storage.in_root(summary, "/elsewhere/root/runs/r1/report.md") == tmp_path / "copy" / "runs/r1/report.md"
    assert storage.run_root("data/artifacts/runs/r1/summary.json") == Path("data/artifacts")
    url = "s3://bucket/qmu/runs/r1/summary.json"
    assert storage.in_root(url, "model/m.parquet") == "s3://bucket/qmu/model/m.parquet"
    assert storage.in_root(url, "file:///old/qmu/runs/r1/report.md") == "s3://bucket/qmu/runs/r1/report.md"
    # never outside the root: only the tail counts, and a tail that climbs is refused
    assert storage.in_root(summary, "model/../../etc/passwd") == tmp_path / "copy" / "etc" / "passwd"
    with pytest.raises(ArtifactError, match="not a file below an artifact root"):
        storage.in_root(summary, "model/..")
