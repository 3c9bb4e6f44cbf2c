"""Logging from inside stage tasks: progress lines with an ETA, facts, warnings."""

from __future__ import annotations

import logging
import time

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from qmu_core.progress import Progress


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The task run's logger; a plain ``qmu`` logger when a body runs outside Prefect (`.fn`)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("qmu")


def progress(label: str) -> Progress:
    """A `qmu_core.progress.Progress` callback that logs one line per epoch with an ETA."""
    logger = _logger()
    start = time.monotonic()

    def report(epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        elapsed = time.monotonic() - start
        eta = elapsed / epoch * (epochs - epoch)
        values = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
        logger.info(f"{label}: epoch {epoch}/{epochs} {values} ({elapsed:.1f}s, ~{eta:.0f}s left)")

    return report


def info(message: str) -> None:
    """One INFO line in the task run's log."""
    _logger().info(message)


def warning(message: str | None) -> None:
    """One WARNING line in the task run's log (nothing for None)."""
    if message:
        _logger().warning(message)
