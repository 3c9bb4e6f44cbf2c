"""The progress callback of long loops (training epochs, unlearning passes)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

__all__ = ["Progress", "started"]

Progress = Callable[[int, int, dict[str, float]], None]
"""Called as ``progress(step, steps, metrics_of_that_step)`` after every epoch or pass.

A callback may also have a ``started()`` method: it is called when the job actually starts
(left the queue of `qmu_core.workers` for a worker process), so that its running time and its
time in the queue can be told apart (`started`)."""


def started(progress: Progress | None) -> None:
    """Tell `progress` that its job starts now, if it wants to know (a ``started()`` method)."""
    mark = getattr(progress, "started", None)
    if callable(mark):
        with contextlib.suppress(Exception):  # a progress line must never fail the job
            mark()
