"""The gap attack: a record is called a member exactly when the model labels it correctly.

The baseline of Yeom et al. (2018): its balanced accuracy is ``(1 + train acc - test acc) / 2``
when the target's generalization gap is the only signal. The score is the correct-prediction
flag (1.0 or 0.0) and the threshold is fixed at 0.5, so nothing is learned from the reference
models (fitting only checks the threat model).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from qmu_core.attacks.base import Attack, Observations, Reference

__all__ = ["GapAttack"]


class GapAttack(Attack):
    """Score = 1.0 if the model's predicted label is the true one, else 0.0; threshold 0.5."""

    name: ClassVar[str] = "gap"
    supports: ClassVar[frozenset[str]] = frozenset({"probs", "labels"})

    def fit(self, reference: Reference) -> GapAttack:
        """Check the threat model; the threshold is always 0.5."""
        self.require(reference)
        self.threshold = 0.5
        return self

    def score(self, target: Observations) -> np.ndarray:
        """``(R,)`` correct flags as 0.0/1.0."""
        if target.correct is None:
            raise ValueError(f"Attack {self.name!r} needs the correct flags (threat model probs or labels).")
        return target.correct.astype(np.float64)
