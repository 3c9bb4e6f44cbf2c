"""The progress callback of long loops (training epochs, unlearning passes)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress"]

Progress = Callable[[int, int, dict[str, float]], None]
"""Called as ``progress(step, steps, metrics_of_that_step)`` after every epoch or pass."""
