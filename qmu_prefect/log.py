"""Logging from inside stage tasks: progress lines with an ETA, facts, warnings.

A progress line also advances a progress bar in the Prefect UI; every call to the API goes
through `best_effort`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar
from uuid import UUID

import httpx
from prefect import get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate
from prefect.context import TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.settings import (
    PREFECT_API_SSL_CERT_FILE,
    PREFECT_API_TLS_INSECURE_SKIP_VERIFY,
    PREFECT_CLIENT_MAX_RETRIES,
    temporary_settings,
)

from qmu_core.progress import Progress

UPDATE_EVERY_S = 1.0
"""A progress artifact is updated at most once per this many seconds (its last step always)."""

API_TIMEOUT_S = 5.0
"""Seconds one progress or report call to the Prefect API may take; it is never retried."""

API_DOWN_S = 30.0
"""After a call could not reach the API (refused, timed out), later calls return at once for this long."""

_T = TypeVar("_T")
_down = threading.Lock()
_down_until = [0.0]


def api_down() -> bool:
    """Whether a recent call could not reach the Prefect API (`best_effort`)."""
    with _down:
        return time.monotonic() < _down_until[0]


def mark_api_down(for_s: float = API_DOWN_S) -> None:
    """Make `best_effort` calls return None at once for `for_s` seconds (`math.inf`: for good)."""
    with _down:
        _down_until[0] = max(_down_until[0], time.monotonic() + for_s)


@functools.cache
def _tls_context(skip_verify: bool, cert_file: str | None) -> ssl.SSLContext:
    """The TLS context Prefect's client builds for these settings, built once per process.

    `SyncPrefectClient` builds one per client unless given one, loading the CA bundle each time
    (about 30 ms): once per progress update, before.
    """
    if skip_verify:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    import certifi

    return ssl.create_default_context(cafile=cert_file or certifi.where())


def best_effort(
    call: Callable[[SyncPrefectClient], _T],
    settings: Mapping[Any, Any] | None = None,
    *,
    timeout_s: float = API_TIMEOUT_S,
) -> _T | None:
    """``call(client)`` through a Prefect client that gives up after `timeout_s` and never retries.

    Progress bars and UI artifacts go through here: they never block or fail the work they show.
    A call that cannot reach the API (connection refused, timeout) makes every call in the next
    `API_DOWN_S` return None at once (`api_down`), so a dead server costs one refused connection,
    not Prefect's retries with backoff (about a minute) per call.

    Args:
        call: What to do with the client; its result is returned.
        settings: Prefect settings for the call (a thread outside the flow's context names its API).
        timeout_s: Seconds each request may take (connect, send, wait for the answer).

    Returns:
        What `call` returned; None if it failed.
    """
    if api_down():
        return None
    try:
        with (
            temporary_settings(updates={**(settings or {}), PREFECT_CLIENT_MAX_RETRIES: 0}),
            get_client(
                sync_client=True,
                httpx_settings={
                    "timeout": timeout_s,
                    "verify": _tls_context(
                        bool(PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value()), PREFECT_API_SSL_CERT_FILE.value()
                    ),
                },
            ) as client,
        ):
            return call(client)
    except httpx.TransportError:  # the API is unreachable, not just unhappy with this call
        mark_api_down()
    except Exception:  # noqa: BLE001 - best effort: the work goes on without it
        pass
    return None


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The task run's logger; a plain ``qmu`` logger when a body runs outside Prefect (`.fn`)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("qmu")


class ProgressBar:
    """A Prefect progress artifact on the current task run, advanced by `advance`.

    Outside a task run (a body called through `.fn`), or when the API does not answer, it does
    nothing: a progress bar never fails or slows the work it reports on (`best_effort`).
    """

    def __init__(self, label: str) -> None:
        self.label = label
        self.id: UUID | None = None
        self._last = 0.0
        self._done = False
        self._at = ""
        context = TaskRunContext.get()
        if context is None or context.task_run is None:
            return
        key = "qmu-" + re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
        artifact = ArtifactCreate(
            type="progress",
            key=key,
            description=f"{label}: starting",
            data=0.0,
            flow_run_id=context.task_run.flow_run_id,
            task_run_id=context.task_run.id,
        )
        self.id = best_effort(lambda client: client.create_artifact(artifact=artifact).id)

    def advance(self, step: int, steps: int) -> None:
        """Show `step` of `steps` (throttled to one API call per `UPDATE_EVERY_S`, except the last step)."""
        now = time.monotonic()
        self._at = f"{step}/{steps}"
        if self.id is None or self._done or (step < steps and now - self._last < UPDATE_EVERY_S):
            return
        self._last = now
        self._done = step >= steps
        update = ArtifactUpdate(
            data=round(100.0 * min(step, steps) / max(steps, 1), 1), description=f"{self.label}: {step}/{steps}"
        )
        self._update(update)

    def finish(self) -> None:
        """100 %: the job ended (an unlearning method may stop before its last pass)."""
        if self.id is not None and not self._done:
            self._done = True
            update = ArtifactUpdate(data=100.0, description=f"{self.label}: done at {self._at or 'start'}")
            self._update(update)

    def _update(self, update: ArtifactUpdate) -> None:
        artifact_id = self.id
        if artifact_id is not None:
            best_effort(lambda client: client.update_artifact(artifact_id=artifact_id, artifact=update))


_open_bars: ContextVar[list[ProgressBar] | None] = ContextVar("qmu_open_bars", default=None)


@contextlib.contextmanager
def finishing_progress() -> Iterator[None]:
    """Around a stage body: the progress bars it opened go to 100 % when it returns (not when it fails)."""
    bars: list[ProgressBar] = []
    token = _open_bars.set(bars)
    try:
        yield
        for bar in bars:
            bar.finish()
    finally:
        _open_bars.reset(token)


WAIT_SHOWN_S = 1.0
"""A job's time in the queue of worker processes shows in its progress lines from this many seconds on."""


class ProgressLine:
    """The `Progress` callback of one job (`progress`): one log line per epoch.

    Each line has the job's running time, its time in the queue when it waited for a worker, and an ETA.

    The running time counts from `started` (the worker took the job: `qmu_core.workers`
    reports it); a job that never reports its start (run in place) counts from its creation.
    """

    def __init__(self, label: str, logger: logging.Logger | logging.LoggerAdapter, bar: ProgressBar) -> None:
        self.label = label
        self.logger = logger
        self.bar = bar
        self.created = time.monotonic()
        self.start: float | None = None
        self.first: tuple[float, int] | None = None  # time and epoch of the first report

    def started(self) -> None:
        """The job left the queue and runs now."""
        if self.start is None:
            self.start = time.monotonic()

    def line(self, epoch: int, epochs: int, metrics: dict[str, float], now: float) -> str:
        """The log line of one report at time `now` (`time.monotonic`)."""
        # The rate comes from the epochs seen here: the first one also pays for the worker's set-up.
        if self.first is None:
            self.first = (now, epoch)
        t0, e0 = self.first
        eta = f"~{(now - t0) / (epoch - e0) * (epochs - epoch):.0f}s left" if epoch > e0 else "ETA from the next epoch"
        start = self.created if self.start is None else self.start
        waited = start - self.created
        queue = f", waited {waited:.1f}s for a worker" if waited >= WAIT_SHOWN_S else ""
        values = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
        head = f"{self.label}: epoch {epoch}/{epochs}" + (f" {values}" if values else "")
        return f"{head} ({now - start:.1f}s running{queue}, {eta})"

    def __call__(self, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        """Log the line of epoch `epoch` of `epochs` and advance the progress bar."""
        self.logger.info(self.line(epoch, epochs, metrics, time.monotonic()))
        self.bar.advance(epoch, epochs)


def progress(label: str) -> Progress:
    """A `qmu_core.progress.Progress` callback for the job `label`.

    It logs one line per epoch with its running time, its time in the queue and an ETA
    (`ProgressLine`), and advances a progress artifact of the task run in the Prefect UI
    (`ProgressBar`).
    """
    bar = ProgressBar(label)
    opened = _open_bars.get()
    if opened is not None:
        opened.append(bar)
    return ProgressLine(label, _logger(), bar)


def info(message: str) -> None:
    """One INFO line in the task run's log."""
    _logger().info(message)


def warning(message: str | None) -> None:
    """One WARNING line in the task run's log (nothing for None)."""
    if message:
        _logger().warning(message)
