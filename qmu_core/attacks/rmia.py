"""RMIA, the relative membership inference attack of Zarifzadeh et al. (2024).

The paper is "Low-Cost High-Power Membership Inference Attacks".

A record ``x`` is a member if the target model ``theta`` likes it, relative to how much the
reference models like it, more than it likes most population records ``z``::

    LR(x, z) = (Pr(x | theta) / Pr(x)) / (Pr(z | theta) / Pr(z))
    score(x) = fraction of the population records z with LR(x, z) > gamma

* ``Pr(x | theta)``: under ``probs`` the true-class probability ``p_y`` (`true_class_prob`);
  under ``labels`` the Laplace-smoothed correct rate of one observation, ``(correct + 1) / 3``
  (2/3 if right, 1/3 if wrong).
* ``Pr(x)``: the mean of ``Pr(x | theta_ref)`` over ALL reference models (IN and OUT) when some
  reference model trained on ``x`` (online); when none did (offline), the paper's
  approximation ``Pr(x) = ((1 + a) * Pr_OUT(x) + (1 - a)) / 2`` from the OUT mean ``Pr_OUT``.
  ``a`` (default 0.3) is the paper's tuned constant; it depends on the models and data. The same
  rule gives ``Pr(z)``.
* The population ``z``: every record with ``reference.population`` (the attacker's shadow pool),
  never subsampled: sorting the ``z`` ratios once makes each score a binary search
  (``np.searchsorted``), so the cost is ``O((R + P) log P)`` per model.

Threshold: leave one reference model out. Each reference model ``m`` is scored as a target, with
``Pr(x)`` from the other models (the fit's sums minus model ``m``'s share) and its ``z`` taken
from the population records ``m`` did not train on (as the target never trained on ``z``; all
population records if ``m`` trained on every one); the threshold maximising balanced accuracy
over all (model, record) pairs is kept. With fewer than two reference models, or pairs of one
membership class only, it falls back to 0.5.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Self

import numpy as np

from qmu_core.attacks.base import Attack, Observations, Reference, ThreatModel, balanced_threshold, true_class_prob
from qmu_core.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from qmu_core.config import AttackConfig

__all__ = ["Rmia", "record_likelihood"]


def record_likelihood(obs: Observations) -> np.ndarray:
    """``(R,)`` ``Pr(x | theta)``: ``p_y`` under ``probs``, ``(correct + 1) / 3`` under ``labels``."""
    if obs.threat_model == "probs":
        return true_class_prob(obs)
    if obs.threat_model == "labels" and obs.correct is not None:
        return (obs.correct.astype(np.float64) + 1.0) / 3.0
    raise ValueError(f"RMIA needs the `probs` or `labels` threat model, not {obs.threat_model!r}.")


class Rmia(Attack):
    """RMIA: the share of population records ``z`` that ``x`` beats by a likelihood ratio above ``gamma``.

    Args:
        gamma: The bar ``LR(x, z) > gamma`` (> 0; the paper's default 1).
        a: The offline approximation's constant, in [0, 1].

    Raises:
        ConfigError: If `gamma` or `a` is out of range.
    """

    name: ClassVar[str] = "rmia"
    supports: ClassVar[frozenset[str]] = frozenset({"probs", "labels"})

    def __init__(self, gamma: float = 1.0, a: float = 0.3) -> None:
        if not gamma > 0.0:
            raise ConfigError(f"RMIA gamma must be > 0, got {gamma}.")
        if not 0.0 <= a <= 1.0:
            raise ConfigError(f"RMIA offline a must be in [0, 1], got {a}.")
        self.gamma = float(gamma)
        self.a = float(a)
        self._pr_x: np.ndarray | None = None
        self._population: np.ndarray | None = None
        self._threat_model: ThreatModel | None = None

    @classmethod
    def from_config(cls, config: AttackConfig, splits: pd.DataFrame, *, seed: int) -> Self:
        """RMIA with ``attack.rmia_gamma`` and ``attack.rmia_offline_a``."""
        return cls(gamma=config.rmia_gamma, a=config.rmia_offline_a)

    def applicable(self, reference: Reference) -> str | None:
        """As `Attack.applicable`, and the population (the ``z`` records) must not be empty."""
        reason = super().applicable(reference)
        if reason is None and not np.asarray(reference.population).any():
            return "needs population records to compare against (reference.population is empty)"
        return reason

    def fit(self, reference: Reference) -> Rmia:
        """Compute ``Pr(x)`` for every record and the leave-one-model-out threshold.

        Raises:
            ConfigError: If the attack does not apply to `reference` (`applicable`).
        """
        self.require(reference)
        lik = np.stack([record_likelihood(obs) for obs in reference.models])  # (M, R)
        member = np.asarray(reference.membership, dtype=bool)
        population = np.asarray(reference.population, dtype=bool)
        n_in, n_out = member.sum(axis=0).astype(np.float64), (~member).sum(axis=0).astype(np.float64)
        total, out = lik.sum(axis=0), np.where(member, 0.0, lik).sum(axis=0)
        self._threat_model = reference.threat_model
        self._population = population
        self._pr_x = self._marginal(total, out, n_in, n_out)
        m = reference.n_models
        if m < 2 or member.all() or not member.any():
            self.threshold = 0.5
            return self
        scores = np.empty(member.shape)
        for i in range(m):
            held_in = member[i].astype(np.float64)
            pr_x = self._marginal(total - lik[i], out - (1.0 - held_in) * lik[i], n_in - held_in, n_out - 1.0 + held_in)
            z = population & ~member[i]
            scores[i] = self._score(lik[i], pr_x, z if z.any() else population)
        self.threshold = balanced_threshold(scores, member)
        return self

    def _marginal(self, total: np.ndarray, out: np.ndarray, n_in: np.ndarray, n_out: np.ndarray) -> np.ndarray:
        """``Pr(x)`` per record from the reference sums (see the module doc)."""
        online = total / np.maximum(n_in + n_out, 1.0)
        offline = 0.5 * ((1.0 + self.a) * out / np.maximum(n_out, 1.0) + (1.0 - self.a))
        return np.where(n_in > 0.5, online, offline)

    def _score(self, lik: np.ndarray, pr_x: np.ndarray, population: np.ndarray) -> np.ndarray:
        ratio = lik / pr_x
        ratio_z = np.sort(ratio[population])
        below = np.searchsorted(ratio_z, ratio / self.gamma, side="left")
        return below.astype(np.float64) / len(ratio_z)

    def score(self, target: Observations) -> np.ndarray:
        """``(R,)`` RMIA scores in [0, 1] of one model's observations (higher = member)."""
        if self._pr_x is None or self._population is None:
            raise ValueError(f"Attack {self.name!r} must be fitted before it scores.")
        if target.threat_model != self._threat_model:
            raise ValueError(
                f"Attack {self.name!r} was fitted under {self._threat_model!r}, not {target.threat_model!r}."
            )
        if target.n_records != len(self._pr_x):
            raise ValueError(f"{target.n_records} records observed; the attack was fitted on {len(self._pr_x)}.")
        return self._score(record_likelihood(target), self._pr_x, self._population)
