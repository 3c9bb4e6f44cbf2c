"""`qmu run` as a user runs it: concurrent runs on one root, reuse from the root alone, --refresh.

Each run is a subprocess with its own temporary Prefect server. Three runs start together on an
empty root; the reuse and refresh tests start from a copy of the root they completed: reuse needs
the root alone. Interrupts: test_interrupts.py.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support import ONE_WORKER, finish, qmu_tiny

# The smallest run with every kind of stage: one method and one reference model: split, 3
# trainings, membership, 1 unlearning, 4 outputs, audit, evaluate, 2 relearn, comparison. One
# training process: these tests are about the root, not the training pool (test_faults.py is).
MINIMAL = ("--set", 'unlearn.methods=["ga"]', "--set", "attack.n_shadow=1", *ONE_WORKER)
MINIMAL_STAGES = 15


def _summary(log: str) -> dict:
    return json.loads(Path(log.strip().splitlines()[-1]).read_text())


def _states(log: str) -> list[str]:
    return re.findall(r"Task run '(?!publish report)[^']+' - Finished in state (\w+)", log)


def _numbers(models: dict) -> dict:
    """`summary["models"]` without the wall times, which a recomputation measures anew."""
    out = {}
    for phase, entry in models.items():
        kept = {k: v for k, v in entry.items() if k != "wall_s"}
        if "gap_to_oracle" in kept:
            kept["gap_to_oracle"] = {k: v for k, v in kept["gap_to_oracle"].items() if k != "wall_s"}
        out[phase] = kept
    return out


def _outputs(root: Path, summary: dict) -> dict[str, pd.DataFrame]:
    return {k: pd.read_parquet(root / p) for k, p in summary["artifacts"]["outputs"].items()}


@pytest.fixture(scope="module")
def concurrent(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, str]]]:
    """Three `MINIMAL` runs started together on one empty root: the root and each run's (exit code, log)."""
    tmp = tmp_path_factory.mktemp("concurrent")
    procs = [qmu_tiny(tmp / "root", tmp / f"home-{i}", *MINIMAL) for i in range(3)]
    return tmp / "root", [finish(p) for p in procs]


@pytest.fixture()
def first(concurrent: tuple[Path, list[tuple[int, str]]], tmp_path: Path) -> tuple[Path, dict]:
    """A root holding one complete `MINIMAL` run (a copy of the concurrent runs' root), and its summary."""
    root, results = concurrent
    code, log = results[0]
    assert code == 0, log[-3000:]
    summary = _summary(log)
    copy = shutil.copytree(root, tmp_path / "root")
    return copy, json.loads(json.dumps(summary).replace(str(root), str(copy)))


def test_three_concurrent_runs_on_one_root(concurrent: tuple[Path, list[tuple[int, str]]]) -> None:
    root, results = concurrent
    assert [code for code, _ in results] == [0, 0, 0], [log[-2000:] for _, log in results]
    summaries = [_summary(log) for _, log in results]
    assert summaries[0]["models"] == summaries[1]["models"] == summaries[2]["models"]
    assert not list(root.rglob("*.tmp"))
    # each artifact was computed once: the runs share the work through per-key locks
    completed = sum(_states(log).count("Completed") for _, log in results)
    assert completed == MINIMAL_STAGES, completed


def test_another_prefect_home_reuses_the_root_and_rebuilds_a_truncated_file(
    first: tuple[Path, dict], tmp_path: Path
) -> None:
    root, summary = first
    model = root / summary["artifacts"]["before"]
    model.write_bytes(model.read_bytes()[:100])  # truncated under a fully cached run
    code, again = finish(qmu_tiny(root, tmp_path / "another-home", *MINIMAL))
    assert code == 0, again[-3000:]
    states = _states(again)
    assert len(states) == MINIMAL_STAGES and states.count("Completed") == 1
    assert states.count("Cached") == MINIMAL_STAGES - 1
    assert "cannot be reused" in again  # the truncated model was noticed, then rebuilt
    assert _summary(again)["models"] == summary["models"]
    assert pd.read_parquet(model).shape[0] > 0


def test_refresh_recomputes_everything_with_identical_values(first: tuple[Path, dict], tmp_path: Path) -> None:
    """Bit-identical: same process layout (`MINIMAL`'s one training process), same machine.

    Every method against a fresh run of the default runner (to float tolerance):
    test_pipeline.py's Dask test.
    """
    root, before = first
    outputs = _outputs(root, before)
    code, again = finish(qmu_tiny(root, tmp_path / "home", *MINIMAL, "--refresh"))
    assert code == 0, again[-3000:]
    assert "Traceback" not in again and "ERROR" not in again
    assert _states(again) == ["Completed"] * MINIMAL_STAGES
    after = _summary(again)
    assert _numbers(after["models"]) == _numbers(before["models"])
    for phase, frame in _outputs(root, after).items():
        old = outputs[phase]
        assert frame[["sample_id", "loss", "correct"]].equals(old[["sample_id", "loss", "correct"]]), phase
        np.testing.assert_array_equal(np.stack(frame["prob"]), np.stack(old["prob"]))
