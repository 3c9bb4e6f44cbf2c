"""The loss attack of Yeom et al. (2018): members have lower loss than non-members.

The score is minus the record's cross-entropy loss, ``log p(y | x)`` (`true_class_prob`), so a
higher score means "more likely a member". One threshold for every record is chosen on the
reference models: the one maximising balanced accuracy (mean of TPR and TNR) over ALL
(reference model, record) pairs, with the membership matrix as labels. All pairs are used, not
only records that some reference model trained on: the attack has no per-record parameter, and
balanced accuracy already weighs members and non-members equally however many each are.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from qmu_core.attacks.base import Attack, Observations, Reference, balanced_threshold, true_class_prob
from qmu_core.errors import ConfigError

__all__ = ["LossAttack"]


class LossAttack(Attack):
    """Score = ``log p_y`` (= minus the loss); threshold by balanced accuracy on the reference pairs."""

    name: ClassVar[str] = "loss"
    supports: ClassVar[frozenset[str]] = frozenset({"probs"})

    def fit(self, reference: Reference) -> LossAttack:
        """Pick the balanced-accuracy threshold over every (reference model, record) pair.

        Raises:
            ConfigError: If the reference is not under ``probs`` or holds only members or only
                non-members.
        """
        self.require(reference)
        if reference.membership.all() or not reference.membership.any():
            raise ConfigError(f"Attack {self.name!r} needs reference members and non-members to set its threshold.")
        scores = np.stack([self.score(obs) for obs in reference.models])
        self.threshold = balanced_threshold(scores, reference.membership)
        return self

    def score(self, target: Observations) -> np.ndarray:
        """``(R,)`` ``log p(y | x)`` (probabilities floored at `PROB_FLOOR`, so always finite)."""
        return np.log(true_class_prob(target))
