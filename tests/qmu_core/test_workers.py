"""Worker processes: results, live progress, errors, a dead worker, the pool size."""

from __future__ import annotations

import os

import pytest

from qmu_core import workers


@pytest.fixture(autouse=True)
def _one_worker() -> None:
    workers.configure(1)


def test_a_job_runs_in_another_process_and_reports_progress() -> None:
    seen: list[tuple[int, int, dict[str, float]]] = []
    pid = workers.run(workers.ping, 3, progress=lambda s, n, v: seen.append((s, n, v)))
    assert pid != os.getpid()
    assert seen == [(1, 3, {"step": 1.0}), (2, 3, {"step": 2.0}), (3, 3, {"step": 3.0})]
    assert workers.run(workers.ping) == pid  # the pool lives on: TensorFlow is imported once per worker


def test_errors_of_the_job_come_back_unchanged() -> None:
    with pytest.raises(ValueError, match="math domain error"):
        workers.run(__import__("math").sqrt, -1.0)


def test_a_dead_worker_is_a_clear_error_and_the_pool_recovers() -> None:
    with pytest.raises(workers.WorkerError, match="died"):
        workers.run(os._exit, 3)
    assert workers.run(workers.ping) != os.getpid()


def test_pool_size_follows_the_config() -> None:
    assert workers.n_workers(3) == 3
    assert workers.n_workers(0) == len(os.sched_getaffinity(0))
