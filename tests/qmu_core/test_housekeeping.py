"""`qmu artifacts ls|gc`: what a root holds; orphans, dead writers' temp files and old records go."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from qmu_cli.root import main
from qmu_core import artifacts, housekeeping
from qmu_core.artifacts import Output
from qmu_core.errors import ArtifactError


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
    assert main(["artifacts", "gc", "--dry-run", "--root", str(tmp_path)]) == 0
    assert orphan.path.exists() and "would remove" in capsys.readouterr().out
    assert main(["artifacts", "ls", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| metrics | 2 |" in out and "| 1 | 1 |" in out and "runs: 1 (r1)" in out


def test_summaries_with_relative_paths_still_protect_their_files(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    root = Path("rel")
    kept = _metrics(root, 1)
    _run(root, "r1", {"metrics": kept})
    monkeypatch.chdir("/")
    assert housekeeping.collect_garbage(tmp_path / "rel") == []


# ----------------------------------------------------------------- live runs, unfinished run folders


def test_gc_removes_nothing_while_a_run_is_live(tmp_path: Path, capsys) -> None:
    """What a running flow holds (`live_run`) stops gc.

    The run's inputs and outputs are named by no summary until it ends, so they look like orphans.
    """
    kept = _metrics(tmp_path, 1)
    _run(tmp_path, "r1", {"metrics": kept})
    with housekeeping.live_run(tmp_path):
        orphan = _metrics(tmp_path, 2)  # what a running flow just wrote: no summary names it yet
        with pytest.raises(ArtifactError, match=r"a run is in progress on .* \(pid \d+\); gc removes nothing"):
            housekeeping.collect_garbage(tmp_path)
        assert main(["artifacts", "gc", "--root", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert f"(pid {os.getpid()})" in err and len(err.strip().splitlines()) == 1
        assert main(["artifacts", "ls", "--root", str(tmp_path)]) == 0
        assert f"runs in progress: 1 (pid {os.getpid()})" in capsys.readouterr().out
        assert orphan.path.exists() and artifacts.verify(orphan) is None
    removed = housekeeping.collect_garbage(tmp_path)  # the run ended: now it is an orphan
    assert orphan.path in removed and not orphan.path.exists() and artifacts.verify(kept) is None
    assert not list((tmp_path / housekeeping.LIVE_DIR).glob("*.json"))


def test_a_dead_runs_marker_does_not_block_gc(tmp_path: Path) -> None:
    live = tmp_path / housekeeping.LIVE_DIR
    live.mkdir()
    (live / "999999999-0123abcd.json").write_text('{"pid": 999999999}')  # a run killed with SIGKILL
    orphan = _metrics(tmp_path, 2)
    assert orphan.path in housekeeping.collect_garbage(tmp_path)
    assert not (live / "999999999-0123abcd.json").exists()


def test_unfinished_run_folders_are_listed_and_dead_ones_removed(tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    dead = runs / ".r1.999999999.0123abcd.tmp"  # a run killed while it wrote its report
    mine = runs / f".r2.{os.getpid()}.0123abcd.tmp"  # one being written now
    for folder in (dead, mine):
        folder.mkdir(parents=True)
        (folder / "report.md").write_text("# half")
        (folder / "summary.json").write_text("{}")
    assert housekeeping._summaries(tmp_path) == []  # never a run
    assert main(["artifacts", "ls", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "runs: 0" in out and "unfinished run folders: 2 (1 of a process that is gone" in out
    removed = housekeeping.collect_garbage(tmp_path)
    assert removed == [dead] and not dead.exists() and mine.is_dir()
    assert housekeeping.remove_own_temp_files(tmp_path) == [mine] and not mine.exists()


def test_a_copied_root_with_relative_summaries_keeps_its_files(tmp_path: Path) -> None:
    kept = _metrics(tmp_path / "a", 1)
    run = tmp_path / "a" / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"artifacts": {"metrics": kept.rel}}))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert housekeeping.collect_garbage(tmp_path / "b") == []
