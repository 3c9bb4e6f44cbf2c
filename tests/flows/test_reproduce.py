"""`qmu reproduce` end to end on a small study of the same design (MNIST from ../shared), twice.

Slow (about 5 minutes on 2 cores): `make test-slow`. The first run computes every study run and
writes REPRODUCTION.md into the run folder and into `--publish-to`; the second reuses every
study run whole (nothing changed, every artifact verifies) and writes the same verdicts; after one
artifact of one study is deleted, a third run runs that study alone, rebuilding that artifact and
reusing every other stage (Cached).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, qmu_env

pytestmark = pytest.mark.slow

SMALL = [
    "data.n_target_train=80",
    "data.n_target_holdout=40",
    "data.n_shadow_pool=80",
    "data.n_test=60",
    "train.epochs=2",
    "attack.n_shadow=2",
    "attack.ulira_models=0",
    "unlearn.max_epochs=2",
    "unlearn.step_scales=[1.0]",
    "hardware.records_per_group=5",
    "hardware.repetitions=100",
]


def _reproduce(tmp: Path, mnist: Path, home: str) -> tuple[int, str, Path]:
    """Exit code, the whole log, and the path printed last on stdout."""
    cmd = [sys.executable, "-m", "qmu_cli", "reproduce", "--seeds", "2", "--mnist", str(mnist)]
    cmd += ["--artifact-root", str(tmp / "root"), "--publish-to", str(tmp / "docs"), "--shots", "10,100"]
    cmd += [a for o in SMALL for a in ("--set", o)]
    proc = subprocess.run(cmd, cwd=REPO, env=qmu_env(tmp / home), capture_output=True, text=True, timeout=1800)
    last = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return proc.returncode, proc.stdout + proc.stderr, Path(last)


def test_reproduce_writes_every_claim_and_a_second_run_is_warm(tmp_path: Path, mnist_dir: Path) -> None:
    code, log, report = _reproduce(tmp_path, mnist_dir, "home-1")
    assert code == 0, log[-4000:]
    assert "Traceback" not in log and "| ERROR" not in log
    assert report.name == "REPRODUCTION.md" and report.parent.parent == tmp_path / "root" / "runs"
    data = json.loads((report.parent / "reproduction.json").read_text())
    assert set(data["runs"]) == {
        "paper/shadow",
        "paper/paper",
        "paper_hqnn/shadow",
        "paper_hqnn/paper",
        "device/willow_pink",
        "device/weber",
        "shots/willow_pink",
    }
    leak = data["tables"]["leak"]
    methods = {"before", "ga", "ssd", "rga", "salun", "finetune"}
    for model in ("paper", "paper_hqnn"):
        for protocol in ("shadow", "paper"):
            rows = [r for r in leak if r["model"] == model and r["protocol"] == protocol]
            assert {r["method"] for r in rows} == methods, (model, protocol)
            assert all(r["ci"][0] is not None for r in rows)  # two seeds: an interval for every number
    assert {r["setting"] for r in data["tables"]["device"]} == {
        "device (willow_pink, emulated)",
        "device (weber, emulated)",
    }
    assert {r["source"] for r in data["shots"]} >= {"shots=10", "shots=100", "exact", "simulation"}
    assert (tmp_path / "docs" / "REPRODUCTION.md").read_text() == report.read_text()
    assert (tmp_path / "docs" / "reproduction.png").stat().st_size > 0

    code, again, report_again = _reproduce(tmp_path, mnist_dir, "home-2")
    assert code == 0, again[-4000:]
    reused = re.findall(r"study (\S+): reused: (\d+) artifacts verified", again)
    assert {name for name, _ in reused} == set(data["runs"]), again[-4000:]
    assert "Beginning subflow" not in again  # no study ran
    second = json.loads((report_again.parent / "reproduction.json").read_text())
    assert second["tables"] == data["tables"]
    assert all(run["reused"] for run in second["runs"].values()) and "| reused whole |" in report_again.read_text()

    # one artifact of `paper/paper` is gone: that study runs, rebuilding it; the others are reused
    found = [json.loads(p.read_text()) for p in (tmp_path / "root" / "studies").glob("*.json")]
    records = {r["study"]: r for r in found}
    shared = {a["key"] for name, r in records.items() if name != "paper/paper" for a in r["artifacts"]}
    gone = next(a for a in records["paper/paper"]["artifacts"] if a["key"] not in shared)  # its own, e.g. its scores
    (tmp_path / "root" / gone["stage"] / f"{gone['key']}.parquet").unlink()
    code, third, report_third = _reproduce(tmp_path, mnist_dir, "home-3")
    assert code == 0, third[-4000:]
    assert {n for n, _ in re.findall(r"study (\S+): reused: (\d+)", third)} == set(data["runs"]) - {"paper/paper"}
    states = re.findall(r"Task run '(?!publish |reuse |record )([^']+)' - Finished in state (\w+)", third)
    assert {s for _, s in states} == {"Cached", "Completed"}, states
    assert f"{gone['key']}: computed" in third
    assert json.loads((report_third.parent / "reproduction.json").read_text())["tables"] == data["tables"]
