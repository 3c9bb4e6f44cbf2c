"""Progress reporting from inside stage tasks."""

from __future__ import annotations

import time

from prefect import get_run_logger

from qmu_core.config import Progress


def progress(label: str) -> Progress:
    """A `qmu_core.training.Progress` callback that logs one line per epoch with an ETA."""
    logger = get_run_logger()
    start = time.monotonic()

    def report(epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        elapsed = time.monotonic() - start
        eta = elapsed / epoch * (epochs - epoch)
        values = " ".join(f"{k}={v:.4f}" for k, v in metrics.items())
        logger.info(f"{label}: epoch {epoch}/{epochs} {values} ({elapsed:.1f}s, ~{eta:.0f}s left)")

    return report
