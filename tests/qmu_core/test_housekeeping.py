"""`qmu artifacts ls|gc`: what a root holds; orphans, dead writers' temp files and old records go."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from flows import cli
from qmu_core import artifacts, housekeeping
from qmu_core.artifacts import Output


def _metrics(root: Path, seed: int) -> artifacts.ArtifactRef:
    frame = pd.DataFrame(
        {"model_id": ["m"], "phase": ["before"], "attack": [""], "metric": ["acc"], "value": [float(seed)]}
    )
    fmap = pd.DataFrame({"name": ["mean"], "row": [0], "values": [[0.5]]})
    ref = artifacts.plan("metrics", {"seed": seed}, root=root)
    return artifacts.write_output(Output(frame, companions={"feature_map": fmap}), ref, {"seed": seed})


def _run(root: Path, name: str, refs: dict) -> None:
    run = root / "runs" / name
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"artifacts": {k: str(v.path) for k, v in refs.items()}}))


def test_gc_keeps_what_runs_name_and_removes_the_rest(tmp_path: Path) -> None:
    kept, orphan = _metrics(tmp_path, 1), _metrics(tmp_path, 2)
    _run(tmp_path, "r1", {"metrics": kept})
    dead = tmp_path / "metrics" / f".{kept.key}.parquet.999999999.0123abcd.tmp"  # no such pid
    dead.write_text("partial")
    live = tmp_path / "metrics" / f".x.parquet.{os.getpid()}.0123abcd.tmp"  # a writer that is running
    live.write_text("partial")
    (tmp_path / ".prefect" / "cache").mkdir(parents=True)
    removed = housekeeping.collect_garbage(tmp_path)
    names = {p.name for p in removed}
    assert orphan.path.name in names and artifacts.seal_path(orphan).name in names
    assert artifacts.companion(orphan, "feature_map").path.name in names
    assert dead.name in names and ".prefect" in names and live.name not in names
    assert artifacts.verify(kept) is None  # the run's artifact, its record and its companion stay
    assert live.exists() and not orphan.path.exists() and not (tmp_path / ".prefect").exists()


def test_gc_dry_run_removes_nothing_and_ls_counts(tmp_path: Path, capsys) -> None:
    kept, orphan = _metrics(tmp_path, 1), _metrics(tmp_path, 2)
    _run(tmp_path, "r1", {"metrics": kept})
    assert cli.main(["artifacts", "gc", "--dry-run", "--root", str(tmp_path)]) == 0
    assert orphan.path.exists() and "would remove" in capsys.readouterr().out
    assert cli.main(["artifacts", "ls", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| metrics | 2 |" in out and "| 1 | 1 |" in out and "runs: 1 (r1)" in out


def test_summaries_with_relative_paths_still_protect_their_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = Path("rel")
    kept = _metrics(root, 1)
    _run(root, "r1", {"metrics": kept})
    monkeypatch.chdir("/")
    assert housekeeping.collect_garbage(tmp_path / "rel") == []
