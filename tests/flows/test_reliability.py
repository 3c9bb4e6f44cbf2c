"""`qmu run` as a user runs it: reuse from the root alone, concurrent runs, --refresh, interrupts.

Each run is a subprocess with its own temporary Prefect server. The root the reuse tests start
from is a copy of the session's fresh `tiny` run (`tiny_run`, made in the test process under
another Prefect server): reuse needs the root alone. How fast an interrupt stops a run is
measured by bench/interrupt_latency.py, not asserted here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qmu_core import environment
from tests.support import TinyRun

ROOT = Path(__file__).resolve().parents[2]
# tiny: split, 4 trainings, membership, 5 unlearning methods, 9 outputs, audit, evaluate, 6 relearn, comparison
STAGES = 29
# The smallest run with every kind of stage (for the locking test): one method and one reference
# model: split, 3 trainings, membership, 1 unlearning, 4 outputs, audit, evaluate, 2 relearn, comparison.
MINIMAL = ("--set", 'unlearn.methods=["ga"]', "--set", "attack.n_shadow=1")
MINIMAL_STAGES = 15


def _env(home: Path) -> dict[str, str]:
    env = environment.child_env(PREFECT_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    return env


def _qmu(root: Path, home: Path, *extra: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "qmu_cli", "run", "--preset", "tiny", "--set", f"run.artifact_root={root}", *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


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


def _server_pid(log: str) -> int:
    return int(re.search(r"temporary Prefect API at \S+ \(pid (\d+)\)", log).group(1))  # type: ignore[union-attr]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


@pytest.fixture(scope="module")
def first(tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A root holding one complete `tiny` run (a copy of the session's), and its summary."""
    return tiny_run.copy_to(tmp_path_factory.mktemp("root")), tiny_run.summary


def test_another_prefect_home_reuses_the_root_and_rebuilds_a_truncated_file(
    first: tuple[Path, dict], tmp_path: Path
) -> None:
    root, summary = first
    model = root / summary["artifacts"]["before"]
    model.write_bytes(model.read_bytes()[:100])  # truncated under a fully cached run
    code, again = _finish(_qmu(root, tmp_path / "another-home"))
    assert code == 0, again[-3000:]
    states = _states(again)
    assert len(states) == STAGES and states.count("Completed") == 1 and states.count("Cached") == STAGES - 1
    assert "cannot be reused" in again  # the truncated model was noticed, then rebuilt
    assert _summary(again)["models"] == summary["models"]
    assert pd.read_parquet(model).shape[0] > 0


def test_refresh_recomputes_everything_with_identical_values(first: tuple[Path, dict], tmp_path: Path) -> None:
    root, before = first
    outputs = _outputs(root, before)
    code, again = _finish(_qmu(root, tmp_path / "home", "--refresh"))
    assert code == 0, again[-3000:]
    assert "Traceback" not in again and "ERROR" not in again
    assert set(_states(again)) == {"Completed"}
    after = _summary(again)
    assert _numbers(after["models"]) == _numbers(before["models"])
    for phase, frame in _outputs(root, after).items():
        old = outputs[phase]
        assert frame[["sample_id", "loss", "correct"]].equals(old[["sample_id", "loss", "correct"]]), phase
        np.testing.assert_array_equal(np.stack(frame["prob"]), np.stack(old["prob"]))


def test_three_concurrent_runs_on_one_root(tmp_path: Path) -> None:
    procs = [_qmu(tmp_path / "root", tmp_path / f"home-{i}", *MINIMAL) for i in range(3)]
    results = [_finish(p) for p in procs]
    assert [code for code, _ in results] == [0, 0, 0], [log[-2000:] for _, log in results]
    summaries = [_summary(log) for _, log in results]
    assert summaries[0]["models"] == summaries[1]["models"] == summaries[2]["models"]
    assert not list((tmp_path / "root").rglob("*.tmp"))
    # each artifact was computed once: the runs share the work through per-key locks
    completed = sum(_states(log).count("Completed") for _, log in results)
    assert completed == MINIMAL_STAGES, completed


STAMP = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3}) \|")
TRAINING = re.compile(r"(train \S+): epoch \d+/")


def _when(line: str, day: dt.date) -> dt.datetime | None:
    match = STAMP.match(line)
    return dt.datetime.combine(day, dt.time.fromisoformat(match.group(1))) if match else None


@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
    ids=["SIGINT", "SIGTERM"],
)
def test_interrupt_starts_no_stage_and_leaves_no_server(tmp_path: Path, sig: int, code: int, word: str) -> None:
    """Ctrl-C or SIGTERM while two models train 500 epochs and the others wait for a worker.

    The queued ones never start, nothing is computed after it, no training runs to its end, the
    exit code is the signal's, the temporary Prefect server is gone and no temporary file is left.
    """
    proc = _qmu(tmp_path / "root", tmp_path / "home", "--set", "train.epochs=500")
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until models are training
        lines.append(line)
        if "epoch 1/500" in line:
            break
    server = _server_pid("".join(lines))
    time.sleep(1.0)  # well inside the training: both workers have started theirs
    sent_at = dt.datetime.now()
    proc.send_signal(sig)
    rest, _ = proc.communicate(timeout=120)
    log = "".join(lines) + rest
    assert proc.returncode == code, log[-2000:]
    assert "Traceback" not in log and word in log, log[-2000:]
    day = sent_at.date()
    before = [line for line in log.splitlines() if (_when(line, day) or sent_at) < sent_at]
    started = set(TRAINING.findall("\n".join(before)))
    assert started, "no training before the signal"
    slack = sent_at + dt.timedelta(seconds=0.5)  # lines of the signal's own moment
    after = [line for line in log.splitlines() if (_when(line, day) or sent_at) > slack]
    late = [line for line in after if (m := TRAINING.search(line)) and m.group(1) not in started]
    assert not late, "stages started after the signal:\n" + "\n".join(late[:10])
    computed = [line for line in after if re.search(r"stage \S+ \S+: computed", line)]
    assert not computed, "stages finished after the signal:\n" + "\n".join(computed)
    assert not [line for line in after if ": epoch 500/500" in line], "a training ran to its end"
    deadline = time.monotonic() + 60  # the process is gone; its server goes with it
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(server)
    assert not list((tmp_path / "root").rglob("*.tmp"))


def test_sigkill_takes_the_server_down_too(tmp_path: Path) -> None:
    proc = _qmu(tmp_path / "root", tmp_path / "home")
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "temporary Prefect API" in line:
            break
    server = _server_pid("".join(lines))
    proc.kill()
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 15
    while _alive(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(server)


def test_an_error_inside_a_task_reaches_the_user_once(tmp_path: Path) -> None:
    code, log = _finish(_qmu(tmp_path / "root", tmp_path / "home", "--set", "data.n_target_train=2000"))
    assert code == 2, log[-2000:]
    assert "Traceback" not in log
    assert log.count("The split needs") == 1 and "qmu: error: The split needs" in log
    assert not list((tmp_path / "root").rglob("*.parquet"))


def test_scratch_of_a_killed_run_is_removed_by_the_next(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    from qmu_prefect import server

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = tmp_path / f"{server.SCRATCH_PREFIX}999999999-abc"  # no such process
    mine = tmp_path / f"{server.SCRATCH_PREFIX}{os.getpid()}-abc"
    dead.mkdir()
    mine.mkdir()
    server._remove_dead_scratch()
    assert not dead.exists() and mine.exists()
