"""Worker processes: results, live progress, errors, a dead worker, the pool size."""

from __future__ import annotations

import os
import signal
import threading
import time

import psutil
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


def test_each_job_reports_its_own_peak_memory() -> None:
    from tests.support import allocate_mb

    workers.clear_peak_rss()
    assert workers.last_peak_rss_mb() is None
    workers.run(allocate_mb, 300)
    big = workers.last_peak_rss_mb()
    workers.clear_peak_rss()
    workers.run(allocate_mb, 1)  # the same worker: its peak was reset when this job started
    small = workers.last_peak_rss_mb()
    assert big is not None and small is not None and big - small > 250, (big, small)
    workers.run(allocate_mb, 300)  # without a clear, the largest peak since the last clear
    assert (workers.last_peak_rss_mb() or 0.0) - small > 250


def test_pool_size_follows_the_config() -> None:
    assert workers.n_workers(3) == 3
    assert workers.n_workers(0) == len(os.sched_getaffinity(0))


class _Recorder:
    """A progress callback that also wants to know when its job starts (`qmu_core.progress.started`)."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.started_at: float | None = None

    def started(self) -> None:
        self.started_at = time.monotonic()
        self.events.append("started")

    def __call__(self, step: int, steps: int, values: dict[str, float]) -> None:
        self.events.append(step)


def test_a_job_reports_its_start_in_the_worker_before_its_first_step() -> None:
    seen = _Recorder()
    workers.run(workers.ping, 2, progress=seen)
    assert seen.events == ["started", 1, 2]


def test_a_job_queued_behind_a_busy_worker_starts_when_the_worker_takes_it() -> None:
    """One worker, busy for 2 s: the next job's start is reported after that, not at submit time.

    So its progress lines tell running time from time in the queue.
    """
    workers.run(workers.ping)  # the pool is up
    submitted = time.monotonic()
    busy = threading.Thread(target=workers.run, args=(time.sleep, 2.0))
    busy.start()
    time.sleep(0.2)  # the sleep job goes first (if not, the assertion below still holds for it)
    seen = _Recorder()
    workers.run(workers.ping, 1, progress=seen)
    busy.join()
    assert seen.events == ["started", 1]
    assert seen.started_at is not None and seen.started_at - submitted >= 2.0


def test_cancel_stops_a_running_job_as_cancelled_not_as_a_dead_worker() -> None:
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            workers.run(time.sleep, 120.0)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)

    pid = workers.run(workers.ping)
    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.5)  # queued or running: either way it ends Cancelled
    try:
        assert workers.cancel()
        thread.join(timeout=60)
        assert not thread.is_alive(), "cancel() did not stop the job"
        assert len(errors) == 1 and isinstance(errors[0], workers.Cancelled), errors
        assert "cancelled" in str(errors[0])
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        with pytest.raises(workers.Cancelled):  # and every later job, until resume()
            workers.run(workers.ping)
    finally:
        workers.resume()
    assert workers.run(workers.ping) != pid


def test_workers_outlive_sigterm_the_flow_process_stops_them() -> None:
    """A Prefect worker cancels a run with SIGTERM to the run's process group: the workers must survive it.

    The training workers must not die of it before the flow's process stops them (`cancel`),
    or their jobs would fail as a dead worker (`WorkerError`).
    """
    pid = workers.run(workers.ping)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.5)
    assert workers.run(workers.ping) == pid


def test_a_killed_worker_costs_one_retry_of_the_jobs_it_broke_not_their_failure() -> None:
    """One of two busy workers killed with kill -9: the pool restarts, and the jobs it broke run once more.

    Every job the broken pool failed (the killed one, the one running beside it, the one
    queued) runs once more and succeeds.
    """
    workers.configure(2)
    try:
        workers.run(workers.ping)  # the pool is up
        results: dict[str, object] = {}

        def job(name: str, fn: object, *args: object) -> None:
            try:
                results[name] = workers.run(fn, *args)  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                results[name] = exc

        threads = [threading.Thread(target=job, args=(f"sleep-{i}", time.sleep, 3.0)) for i in range(2)]
        threads.append(threading.Thread(target=job, args=("queued", workers.ping)))
        for thread in threads:
            thread.start()
            time.sleep(0.3)
        pids = [p.pid for p in psutil.Process().children() if "multiprocessing.spawn" in " ".join(p.cmdline())]
        busy = [pid for pid in pids if "resource_tracker" not in " ".join(psutil.Process(pid).cmdline())]
        assert len(busy) == 2, busy
        os.kill(busy[0], signal.SIGKILL)
        for thread in threads:
            thread.join(timeout=60)
        assert results["sleep-0"] is None and results["sleep-1"] is None, results
        assert isinstance(results["queued"], int) and results["queued"] not in busy, results
    finally:
        workers.configure(1)


def test_a_job_that_kills_its_worker_twice_is_a_worker_error_naming_the_job() -> None:
    with pytest.raises(workers.WorkerError, match=r"_exit .*died.*twice"):
        workers.run(os._exit, 3)


def test_a_job_is_named_not_imported_and_every_name_is_a_job_of_qmu_core_jobs() -> None:
    """The flow's process hands `Job`s to its workers without importing `qmu_core.jobs` (TensorFlow)."""
    import inspect
    import pickle

    from qmu_core import jobs
    from qmu_core.jobref import JOB_NAMES, Job

    for name in JOB_NAMES:
        assert inspect.isfunction(getattr(jobs, name, None)), name
        job = pickle.loads(pickle.dumps(Job(name)))
        assert job == Job(name) and str(job) == name
        assert name.encode() in pickle.dumps(Job(name)) and b"qmu_core.jobs" not in pickle.dumps(Job(name))
    with pytest.raises(ValueError, match="has no job 'train'.*known: \\['import_weights_split', 'outputs_split'"):
        Job("train")
