"""`qmu run` interrupted as a user interrupts it: Ctrl-C, SIGTERM, SIGKILL, an error inside a task.

Each run is a subprocess with its own temporary Prefect server. How fast an interrupt stops a run
is measured by bench/interrupt_latency.py, not asserted here.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.support import alive, finish, qmu_tiny


def _server_pid(log: str) -> int:
    return int(re.search(r"temporary Prefect API at \S+ \(pid (\d+)\)", log).group(1))  # type: ignore[union-attr]


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
    proc = qmu_tiny(tmp_path / "root", tmp_path / "home", "--set", "train.epochs=500")
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
    while alive(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(server)
    assert not list((tmp_path / "root").rglob("*.tmp"))


def test_sigkill_takes_the_server_down_too(tmp_path: Path) -> None:
    proc = qmu_tiny(tmp_path / "root", tmp_path / "home")
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
    while alive(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(server)


def test_an_error_inside_a_task_reaches_the_user_once(tmp_path: Path) -> None:
    code, log = finish(qmu_tiny(tmp_path / "root", tmp_path / "home", "--set", "data.n_target_train=2000"))
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
