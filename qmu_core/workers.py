"""Worker processes for TensorFlow-bound jobs (model training), which do not scale in threads.

TensorFlow and TFQ hold one process's cores with their own thread pools, and Python threads
that each train a model mostly wait on each other. Independent models (target, oracle, every
reference model) therefore train in a pool of worker processes, one per core by default, each
with its share of the cores for TensorFlow's thread pools. The pool starts on first use and
lives for the whole process, so TensorFlow is imported once per worker, not once per model.

* `run(fn, *args, progress=..., **kwargs)` calls ``fn(*args, progress=<proxy>, **kwargs)`` in a
  worker and returns its result; the proxy forwards every progress call to the caller's
  `progress` callback (a queue drained by one thread here), so epochs still show up live.
* `configure(n)` sets the number of workers (``run.workers``; 0 means one per core). A change
  restarts the pool on next use.
* Workers exit when this process exits, even when it is killed (each polls its parent);
  `shutdown()` stops them at once (the CLI calls it when a flow has finished).
* In a daemonic process (a Dask worker process) `run` calls `fn` in place: such a process may
  not have children, and it already is one worker of a pool.
* A worker that dies (out of memory, killed) costs one retry, not the run: a process pool whose
  worker died fails every job it was running or had queued (`BrokenProcessPool`), so the pool is
  restarted (its surviving workers stopped, since they ignore SIGTERM and would train on) and
  every one of those jobs, the one on the dead worker included, runs once more. One line says so
  (`set_notifier`). A job whose worker dies a second time fails with `WorkerError`, which says so.
  The named semaphores a dead worker held (TensorFlow's import makes one) are released by this
  process, so the resource tracker prints no "leaked semaphore" warning after the run's output.
* `cancel()` stops the workers at once (`STOP_SIGNAL`, no waiting for their jobs): every job waiting
  or running raises `Cancelled`, and so does every later `run` until `resume()`. The flows call
  it when their run is cancelled or terminated (`qmu_prefect.runner`). Workers ignore SIGTERM: a
  Prefect worker cancels a run with SIGTERM to the flow run's whole process group, and the
  flow's process, not that signal, decides when its workers stop (a worker dying first would
  look like a crash, `WorkerError`, to the job waiting on it).
* A job reports when it leaves the queue and starts in a worker: the `progress` callback's
  ``started()`` method, if it has one, is called then (`qmu_core.progress.started`).
* Each job's peak memory: its worker's peak RSS is reset when the job starts and read when it
  ends (Linux ``VmHWM``); `last_peak_rss_mb()` gives the thread that called `run` the largest
  since its `clear_peak_rss()` (a stage's worker jobs).

`fn` must be importable by name (a module-level function): it is pickled by reference. The
model stages pass a `qmu_core.jobref.Job`: a function of `qmu_core.jobs` named rather than imported,
so that the flow's process, which only hands jobs to its workers, never loads TensorFlow.
"""

from __future__ import annotations

import _multiprocessing  # type: ignore[import-not-found]  # CPython's, what multiprocessing.synchronize uses
import atexit
import contextlib
import gc
import itertools
import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from queue import Empty
from typing import Any, TypeVar

from qmu_core import environment, machine
from qmu_core.errors import QMUError
from qmu_core.progress import Progress, started

__all__ = [
    "Cancelled",
    "WorkerError",
    "cancel",
    "clear_peak_rss",
    "configure",
    "is_cancelled",
    "last_peak_rss_mb",
    "n_workers",
    "ping",
    "resume",
    "run",
    "set_notifier",
    "shutdown",
]

T = TypeVar("T")


class WorkerError(QMUError):
    """A worker process died while running a job."""


class Cancelled(QMUError):
    """The run was cancelled (`cancel`) while this job waited for a worker or ran in one."""


_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_size = 0
_requested = 0
_queue: Any = None
_drainer: threading.Thread | None = None
_inboxes: dict[int, queue.Queue[tuple[Any, ...]]] = {}
_tokens = itertools.count()
_cancelled = threading.Event()
_stop_drain = threading.Event()

# The step of the message a worker sends when it starts a job (steps are 1-based).
_START = 0

STOP_SIGNAL = signal.SIGUSR1
"""What `cancel` sends a worker to stop it at once (SIGKILL follows after `STOP_GRACE_S`)."""
STOP_GRACE_S = 3.0

# In a worker: the queue progress messages go to.
_worker_queue: Any = None

# A worker's message about a named semaphore it made or released: (_SEM, pid, name, rtype, made).
_SEM = "semaphore"
# In the parent: the named resources each worker process holds, by process id.
_held: dict[int, dict[str, str]] = {}

_notify: Callable[[str], None] = logging.getLogger("qmu").warning


def set_notifier(notify: Callable[[str], None]) -> None:
    """Where the one line about a restarted pool goes (the stages' task-run log)."""
    global _notify
    _notify = notify


def n_workers(requested: int = 0) -> int:
    """Workers for `requested` (0: one per CPU this process may use, at least 1)."""
    if requested > 0:
        return requested
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def configure(workers: int) -> None:
    """Use `workers` processes from the next job on (0: one per core)."""
    global _requested
    with _lock:
        _requested = workers


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(1.0)


def _stop_worker(_signum: int, _frame: object) -> None:
    """In a worker, on `STOP_SIGNAL` (`cancel`): exit now, mid-job.

    The named semaphores this process made (TensorFlow's import makes one) are released first, as at a
    normal exit: a killed worker leaves them to the resource tracker, which removes them with a warning.
    """
    from multiprocessing import util

    with contextlib.suppress(Exception):
        util._run_finalizers(0)  # type: ignore[attr-defined]  # what a normal exit runs for them
    os._exit(0)


def _init_worker(queue: Any, parent: int, threads: int) -> None:
    """Worker start-up: environment, TensorFlow's thread share, the parent watch."""
    global _worker_queue
    _worker_queue = queue
    environment.apply()  # before TensorFlow is imported
    os.environ["TF_NUM_INTRAOP_THREADS"] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    # The parent stops its workers (module doc); a group-wide SIGTERM must not do it first.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(STOP_SIGNAL, _stop_worker)
    _report_semaphores(queue)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="qmu-parent-watch").start()


def _report_semaphores(queue: Any) -> None:
    """In a worker: tell the parent every named resource this process registers with the resource tracker.

    Releases are told too, so that the parent can release them if this process is killed.
    """
    from multiprocessing import resource_tracker

    register, unregister = resource_tracker.register, resource_tracker.unregister

    def registered(name: str, rtype: str) -> None:
        register(name, rtype)
        with contextlib.suppress(Exception):
            queue.put((_SEM, os.getpid(), name, rtype, True))

    def unregistered(name: str, rtype: str) -> None:
        unregister(name, rtype)
        with contextlib.suppress(Exception):
            queue.put((_SEM, os.getpid(), name, rtype, False))

    resource_tracker.register = registered  # type: ignore[assignment]
    resource_tracker.unregister = unregistered  # type: ignore[assignment]


def _release_held_by_dead() -> None:
    """In the parent: unlink the named semaphores of workers that died without releasing them (killed).

    Also tell the resource tracker, which would otherwise warn about them at exit.
    """
    from multiprocessing import resource_tracker

    for pid in list(_held):
        with contextlib.suppress(Exception):
            os.kill(pid, 0)
            if not _zombie(pid):
                continue  # alive: it releases its own
        for name, rtype in _held.pop(pid).items():
            if rtype != "semaphore":
                continue
            try:
                _multiprocessing.sem_unlink(name)
            except OSError:
                continue  # released by the worker itself (its exit message did not reach us)
            with contextlib.suppress(Exception):
                resource_tracker.unregister(name, rtype)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True  # no such process


_peaks = threading.local()


def clear_peak_rss() -> None:
    """Forget this thread's job peaks (`last_peak_rss_mb`): a stage calls it before its body."""
    _peaks.mb = None


def last_peak_rss_mb() -> float | None:
    """The largest peak RSS of this thread's worker jobs since `clear_peak_rss` (None: none measured).

    Not measured in a Dask worker (`run` calls in place there, and its threads share the process).
    """
    return getattr(_peaks, "mb", None)


def _call(token: int | None, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[T, Any]:
    """In a worker: run `fn` (forwarding its progress calls to the parent); its result and the job's peak RSS."""
    measured = machine.reset_peak_rss()
    result = _progressing(token, fn, args, kwargs)
    return result, machine.peak_rss_mb() if measured else None


def _progressing(token: int | None, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    if token is None:
        return fn(*args, **kwargs)

    def forward(step: int, steps: int, values: dict[str, float]) -> None:
        _worker_queue.put((token, step, steps, dict(values)))

    _worker_queue.put((token, _START, 0, {}))  # the job left the queue: its running time starts here
    try:
        return fn(*args, **kwargs, progress=forward)
    finally:
        _worker_queue.put((token, None, None, None))  # the end mark: every line before it is sent


def _drain(queue: Any) -> None:
    """In the parent: route progress messages to the inbox of the job they belong to.

    Only routing happens here: the caller's own thread calls its progress callback (`run`), so
    the callback runs in the caller's context (a Prefect task run's logger and API settings).
    """
    while not _stop_drain.is_set():
        try:
            item = queue.get(timeout=0.5)
        except Empty:
            continue
        except Exception:  # noqa: BLE001 - the queue closed under us (interpreter exit): stop quietly
            return
        if item is None:
            return
        if item[0] == _SEM:
            _, pid, name, rtype, made = item
            if made:
                _held.setdefault(pid, {})[name] = rtype
            else:
                _held.get(pid, {}).pop(name, None)
            continue
        inbox = _inboxes.get(item[0])
        if inbox is not None:
            inbox.put(item[1:])


def _ensure_pool() -> ProcessPoolExecutor:
    global _pool, _size, _queue, _drainer
    with _lock:
        size = n_workers(_requested)
        if _pool is not None and size == _size and not getattr(_pool, "_broken", False):
            return _pool
        if _pool is not None and getattr(_pool, "_broken", False):
            _stop_locked(kill=True)  # its surviving workers ignore SIGTERM: stop them, or they train on
        _stop_locked()
        _stop_drain.clear()
        ctx = mp.get_context("spawn")
        _queue = ctx.Queue()
        _drainer = threading.Thread(target=_drain, args=(_queue,), daemon=True, name="qmu-worker-progress")
        _drainer.start()
        threads = max(1, n_workers(0) // size)
        _pool = ProcessPoolExecutor(
            size, mp_context=ctx, initializer=_init_worker, initargs=(_queue, os.getpid(), threads)
        )
        _size = size
        return _pool


def _stop_locked(*, kill: bool = False) -> None:
    """Stop the workers and release the progress queue now, not at interpreter exit.

    Named semaphores still alive then race the resource tracker, which prints warnings after our output.

    `kill`: stop the workers first (`STOP_SIGNAL`, then SIGKILL) instead of waiting for their jobs.
    """
    global _pool, _queue, _drainer
    if _pool is not None:
        # An idle pool's workers are stopped the same way: a worker that exits normally tears
        # TensorFlow down first, about a second for every run's end (they have no job to lose).
        idle = not getattr(_pool, "_pending_work_items", None)
        if kill or idle or getattr(_pool, "_broken", False):  # a broken pool's survivors ignore SIGTERM
            processes = list((getattr(_pool, "_processes", None) or {}).values())
            for process in processes:
                with contextlib.suppress(Exception):
                    os.kill(process.pid, STOP_SIGNAL)
            deadline = time.monotonic() + STOP_GRACE_S
            for process in processes:
                with contextlib.suppress(Exception):
                    process.join(timeout=max(0.0, deadline - time.monotonic()))
                    if process.is_alive():
                        process.kill()
        _pool.shutdown(wait=True, cancel_futures=True)
        _pool = None
    if _queue is not None:
        _stop_drain.set()
        if _drainer is not None:
            _drainer.join(timeout=5.0)
        if kill:  # a killed worker may hold the queue's write lock: do not wait to flush into it
            _queue.cancel_join_thread()
        _queue.close()
        _queue.join_thread()
        _queue, _drainer = None, None
        gc.collect()  # run the semaphores' finalizers (unlink and unregister) here
    _release_held_by_dead()


def shutdown() -> None:
    """Stop the workers (also runs at exit)."""
    with _lock:
        _stop_locked()


def cancel() -> bool:
    """The run is being cancelled: kill the workers now, without waiting for their jobs.

    Every `run` waiting or running raises `Cancelled`, and so does every later one until
    `resume()`. Returns whether the workers were up.
    """
    _cancelled.set()
    with _lock:
        had_pool = _pool is not None
        _stop_locked(kill=True)
    return had_pool


def resume() -> None:
    """Accept jobs again after `cancel` (a new run in the same process)."""
    _cancelled.clear()


def is_cancelled() -> bool:
    """Whether the run was cancelled or stopped (`cancel`) and no job may start until `resume`."""
    return _cancelled.is_set()


def _cancelled_error(fn: Callable[..., Any]) -> Cancelled:
    return Cancelled(
        f"{getattr(fn, '__name__', fn)} stopped: the run was cancelled. Finished stages are kept and reused next time."
    )


atexit.register(shutdown)


def _name(fn: Callable[..., Any], kwargs: dict[str, Any]) -> str:
    which = kwargs.get("which")
    return f"{getattr(fn, '__name__', fn)}" + (f" ({which})" if isinstance(which, str) else "")


def run(fn: Callable[..., T], *args: Any, progress: Progress | None = None, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a worker process; its progress calls reach `progress` here.

    A worker that dies during the job, or during another job of the pool (which fails every job
    of the pool), costs one retry on the restarted pool (module doc).

    Raises:
        WorkerError: If the job's worker process died on its second try too.
        Cancelled: If the run was cancelled (`cancel`) before or during the job.
        Exception: Whatever `fn` raised, unchanged.
    """
    broken = 0
    while True:
        if _cancelled.is_set():
            raise _cancelled_error(fn)
        if mp.current_process().daemon:
            # A daemonic process (a Dask worker) may not start children: it is the worker itself.
            if progress is None:
                return fn(*args, **kwargs)
            started(progress)
            return fn(*args, **kwargs, progress=progress)
        pool = _ensure_pool()
        token = next(_tokens)
        inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        if progress is not None:
            _inboxes[token] = inbox
        try:
            try:
                future = pool.submit(_call, token if progress is not None else None, fn, args, kwargs)
            except RuntimeError:  # another job's thread is replacing this pool: use the next one
                if _cancelled.is_set():
                    raise _cancelled_error(fn) from None
                if _pool is pool and not getattr(pool, "_broken", False):
                    raise
                time.sleep(0.1)
                continue
            if progress is not None:
                _relay(inbox, future, progress)
            result, peak = future.result()
            if peak is not None:
                _peaks.mb = max(peak, last_peak_rss_mb() or 0.0)
            return result
        except (BrokenProcessPool, CancelledError) as exc:
            if _cancelled.is_set():  # we stopped the pool on purpose: not a crash
                raise _cancelled_error(fn) from None
            if not isinstance(exc, BrokenProcessPool):
                raise
            broken += 1
            with _lock:
                restart = _pool is pool
                if restart:
                    _stop_locked(kill=True)  # the others ignore SIGTERM: stop them now
            if broken > 1:
                raise WorkerError(
                    f"The worker process running {_name(fn, kwargs)} died twice (killed, or out of memory). "
                    "Run again (finished models are cached); if it repeats, lower run.workers to use fewer "
                    "processes at once."
                ) from exc
            if restart:
                with contextlib.suppress(Exception):  # a log line must never fail the job
                    _notify(
                        f"A worker process died (killed, or out of memory) while {_name(fn, kwargs)} ran or "
                        "waited; restarted the pool: every job it was running or had queued runs once more."
                    )
        finally:
            _inboxes.pop(token, None)


def _relay(inbox: queue.Queue[tuple[Any, ...]], future: Future[Any], progress: Progress) -> None:
    """Call `progress` in this thread for every message of the job, until its end mark.

    Or until the job failed without one.
    """
    deadline = None
    while True:
        try:
            step, steps, values = inbox.get(timeout=0.2)
        except queue.Empty:
            if future.done():
                if future.cancelled() or future.exception() is not None:
                    return
                deadline = deadline or time.monotonic() + 10.0  # done: the end mark is on its way
                if time.monotonic() > deadline:
                    return
            continue
        if step is None:
            return
        with contextlib.suppress(Exception):  # a progress line must never fail the job
            if step == _START:
                started(progress)
            else:
                progress(step, steps, values)


def ping(steps: int = 1, *, progress: Progress | None = None) -> int:
    """A health check: report `steps` progress calls, return the worker's process id."""
    for step in range(1, steps + 1):
        if progress is not None:
            progress(step, steps, {"step": float(step)})
    return os.getpid()
