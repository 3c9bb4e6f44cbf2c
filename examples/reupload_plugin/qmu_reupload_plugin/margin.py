"""An example QMU attack plug-in: ``margin``, the model's confidence margin on the true class.

Score of a record: ``p(y | x) - max_{c != y} p(c | x)``, in [-1, 1]: a model that memorised a
record is more confident in its label than in any other (higher = more likely a member). The
threshold is the one with the best balanced accuracy over every (reference model, record) pair,
with the membership matrix as labels, as QMU's own ``loss`` attack sets its threshold. It reads
class probabilities, so it runs under the ``probs`` threat model only (QMU reports it "not
applicable" under the others).

QMU finds it through the entry point ``margin`` in the group ``qmu.attacks`` (``pyproject.toml``)
once ``attack.plugins`` lists it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from qmu_core.attacks.base import Attack, Observations, Reference, balanced_threshold

__all__ = ["MarginAttack", "margin"]


def margin(probs: np.ndarray, label: np.ndarray) -> np.ndarray:
    """``p(y) - max over the other classes`` per record (`probs`: ``(R, C)``, `label`: ``(R,)`` class indices)."""
    rows = np.arange(len(label))
    others = probs.copy()
    others[rows, label] = -np.inf
    return probs[rows, label] - others.max(axis=1)


class MarginAttack(Attack):
    """Score = confidence margin of the true class; threshold by balanced accuracy on the reference pairs."""

    name: ClassVar[str] = "margin"
    supports: ClassVar[frozenset[str]] = frozenset({"probs"})

    def fit(self, reference: Reference) -> MarginAttack:
        """Pick the balanced-accuracy threshold over every (reference model, record) pair."""
        self.require(reference)
        scores = np.stack([self.score(obs) for obs in reference.models])
        self.threshold = balanced_threshold(scores, reference.membership)
        return self

    def score(self, target: Observations) -> np.ndarray:
        """``(R,)`` confidence margins."""
        if target.probs is None:
            raise ValueError("the margin attack needs class probabilities (attack.threat_model=probs)")
        return margin(np.asarray(target.probs, dtype=np.float64), target.label)
