"""Progress lines of stage tasks.

Running time from the job's start in its worker, the time it waited for a worker apart, an
ETA from the epochs seen.
"""

from __future__ import annotations

import logging

import pytest

from qmu_core import workers
from qmu_core.progress import started
from qmu_prefect import log as _log


def _line(created: float = 100.0) -> _log.ProgressLine:
    line = _log.ProgressLine("train ref-03", logging.getLogger("qmu-test"), _log.ProgressBar("train ref-03"))
    line.created = created
    return line


def test_running_time_counts_from_the_jobs_start_and_the_queue_time_shows_apart() -> None:
    line = _line(100.0)
    line.start = 131.0  # waited 31 s for a free worker process
    first = line.line(1, 20, {"loss": 0.5}, now=133.0)
    waited = "waited 31.0s for a worker"
    assert first == f"train ref-03: epoch 1/20 loss=0.5000 (2.0s running, {waited}, ETA from the next epoch)"
    fifth = line.line(5, 20, {"loss": 0.25}, now=135.1)
    assert fifth == f"train ref-03: epoch 5/20 loss=0.2500 (4.1s running, {waited}, ~8s left)"
    assert "since the stage started" not in fifth


def test_no_queue_time_when_the_job_started_at_once() -> None:
    line = _line(100.0)
    line.start = 100.2
    assert line.line(1, 3, {}, now=101.2) == "train ref-03: epoch 1/3 (1.0s running, ETA from the next epoch)"


def test_a_job_run_in_place_counts_from_its_creation() -> None:
    """No start reported (a Dask worker trains in place; an unlearning loop in the task's thread)."""
    line = _line(100.0)
    assert line.line(2, 4, {}, now=106.0).startswith("train ref-03: epoch 2/4 (6.0s running, ")


def test_the_start_is_reported_through_the_worker_pool(caplog: pytest.LogCaptureFixture) -> None:
    """`progress()` outside a task run: the worker's start message reaches `started`, then each step a line."""
    workers.configure(1)
    report = _log.progress("ping")
    assert isinstance(report, _log.ProgressLine)
    with caplog.at_level(logging.INFO, logger="qmu"):
        workers.run(workers.ping, 2, progress=report)
    assert report.start is not None and report.start >= report.created
    lines = [r.getMessage() for r in caplog.records if r.name == "qmu"]
    assert len(lines) == 2 and lines[0].startswith("ping: epoch 1/2 step=1.0000 (") and "s running" in lines[0]
    started(report)  # a second start mark changes nothing
    assert report.start is not None
