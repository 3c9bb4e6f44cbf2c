"""`qmu artifacts gc` never removes what a live run may use.

While a flow runs on a root (it holds `housekeeping.live_run`), gc refuses and removes
nothing; the run completes.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from qmu_cli.root import main
from qmu_core import artifacts, environment, housekeeping
from qmu_core.artifacts import Output
from tests.support import ONE_WORKER

REPO = Path(__file__).resolve().parents[2]
HOLD = """from qmu_core import housekeeping; import sys, time
with housekeeping.live_run(sys.argv[1]):
    print("live", flush=True)
    time.sleep(600)
"""


def _orphan(root: Path) -> artifacts.ArtifactRef:
    """What a running flow has just written: an artifact no summary names yet."""
    frame = pd.DataFrame({"model_id": ["m"], "phase": ["before"], "attack": [""], "metric": ["acc"], "value": [1.0]})
    ref = artifacts.plan("metrics", {"seed": 1}, root=root)
    return artifacts.write_output(Output(frame), ref, {"seed": 1})


@pytest.fixture
def live_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the root's live-run lock, as a running flow does."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "live"
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_gc_while_another_process_runs_removes_nothing(
    tmp_path: Path, live_process: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    orphan = _orphan(tmp_path)
    assert main(["artifacts", "gc", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"qmu: error: a run is in progress on {tmp_path} (pid {live_process.pid}); gc removes nothing while "
        "runs are live \u2014 try again when it ends"
    )
    assert orphan.path.is_file() and artifacts.verify(orphan) is None
    live_process.send_signal(signal.SIGKILL)  # the run dies: its lock goes with it, its marker stays
    live_process.wait()
    assert orphan.path in housekeeping.collect_garbage(tmp_path) and not orphan.path.exists()


def test_gc_during_a_real_run_leaves_the_run_whole(tmp_path: Path) -> None:
    """`qmu run --preset tiny` in a subprocess; at its first computed stage, `qmu artifacts gc`.

    One unlearning method, one reference model, one training process: every kind of stage, with less to train.
    """
    root = tmp_path / "root"
    env = environment.child_env()
    cmd = [sys.executable, "-m", "qmu_cli", "run", "--preset", "tiny", "--set", f"run.artifact_root={root}"]
    cmd += ["--set", 'unlearn.methods=["ga"]', "--set", "attack.n_shadow=1", *ONE_WORKER]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env)
    assert proc.stdout is not None
    lines: list[str] = []
    wrote = None
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        lines.append(line)
        found = re.search(r"computed in [\d.]+s, wrote (\S+\.parquet)", line)
        if found:
            wrote = Path(found.group(1))
            break
        assert time.monotonic() < deadline, "".join(lines[-20:])
    assert wrote is not None, "".join(lines[-20:])
    gc = subprocess.run(
        [sys.executable, "-m", "qmu_cli", "artifacts", "gc", "--root", str(root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert gc.returncode == 2 and "a run is in progress on" in gc.stderr and gc.stdout == "", gc.stderr
    assert wrote.is_file()
    rest, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, (lines + [rest])[-40:]
    summary = json.loads(Path(rest.strip().splitlines()[-1]).read_text())
    listed = [p for v in summary["artifacts"].values() for p in (v.values() if isinstance(v, dict) else [v])]
    assert f"{wrote.parent.name}/{wrote.name}" in listed  # what gc would have taken for an orphan
    housekeeping.collect_garbage(root)  # the run ended: gc works again, and keeps what the run names
    assert all((root / p).is_file() for p in listed)
