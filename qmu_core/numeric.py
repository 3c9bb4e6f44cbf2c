"""Small numeric rules shared across modules."""

from __future__ import annotations

import numpy as np

__all__ = ["TINY", "safe_divisor"]

TINY = 1e-12
"""Spreads at or below this are treated as zero."""


def safe_divisor(spread: np.ndarray) -> np.ndarray:
    """Divisors for scaling: the spread itself, or 1 where it is (numerically) zero."""
    spread = np.asarray(spread)
    return np.where(spread > TINY, spread, 1.0)
