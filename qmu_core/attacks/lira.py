"""LiRA, the likelihood-ratio attack of Carlini et al. (2022), offline and online.

The paper is "Membership Inference Attacks From First Principles".

Per (model, record) the attack reads a statistic ``s`` (`lira_statistic`):

* ``probs``: the logit-scaled confidence ``log p_y - log(sum of the other p)`` (`logit_confidence`);
* ``expectations``: the ⟨Z⟩ vector, its ``Q`` dimensions treated as independent Gaussians (the
  log-likelihoods of the dimensions are summed);
* ``labels``: the correct flag as 0.0/1.0 (a Gaussian on a binary value: crude, kept alive by the
  variance floor).

For each record it fits a Gaussian to the statistic of the reference models that trained on it
(IN) and of those that did not (OUT), then scores a target model's statistic:

* offline (`LiraOffline`), the one-sided test against OUT only::

      score = sum_d log Phi(o_rd * (s_d - mu_out_rd) / sigma_out_rd)

  with ``o_rd = +1`` for ``probs`` and ``labels`` (higher confidence / correct = member, the
  paper's direction). Under ``expectations`` a qubit's ⟨Z⟩ may move either way on training
  records, so ``o_rd = ±1`` is the sign of the mean IN-minus-OUT shift of dimension ``d`` over
  the reference records of record ``r``'s class (records with both IN and OUT observations;
  ``+1`` if its class has none).
* online (`LiraOnline`), the log likelihood ratio::

      score = sum_d [log N(s_d; mu_in_rd, var_in_rd) - log N(s_d; mu_out_rd, var_out_rd)]

Means are per record. Variances: ``fixed_variance=True`` uses one variance per side and
dimension, pooled over records (within-record squared deviations over within-record degrees of
freedom; the paper recommends a global variance with few reference models, though its code
takes the spread of all observations, which also counts the spread between records);
``fixed_variance=False`` uses each record's own (ddof=1) variance where it has at least two
observations on that side, else the pooled one, floored at ``VAR_FLOOR_REL`` times the pooled
variance. Every variance is floored at ``VAR_FLOOR_ABS``.

A record with no IN (or no OUT) reference observation gets that side's mean from its other side
plus the *global* IN-minus-OUT shift (the mean over records that have both; 0 if none), and the pooled
variance of the missing side. This keeps the record's own difficulty, where a global mean over
all records would reduce the attack to a loss attack on that record.

Threshold (both variants): leave one reference model out. Each reference model ``m`` is scored
with the Gaussians of the other ``M - 1`` models (the fit's sums minus model ``m``'s share), and
the threshold maximising balanced accuracy over all (model, record) pairs is kept (the online
variant uses this too rather than a fixed 0, as the Gaussians' calibration is never exact). With
fewer than two reference models, or pairs of one membership class only, the threshold falls back
to the natural one: 0 for online (likelihood ratio 1, equal priors), ``D * log 0.5`` for offline
(the statistic at every OUT mean). The ⟨Z⟩ orientation ``o`` comes from all reference models
(a negligible leak into the leave-one-out threshold).

Shot-aware LiRA (`_Lira.fit_shot_aware`, issue 31): a target measured with finite shots carries
shot noise in its statistic that infinite-shot references do not. The Gaussians are fitted on the
reference models' infinite-shot outputs (under the device's noise), and each record's variance is
widened by the variance shot noise adds to the statistic, ``v[r, d] = mean_m (s_measured[m, r, d] -
s_exact[m, r, d])^2`` over the reference models measured at the target's shot count. The
leave-one-model-out threshold then scores each held-out model's *measured* statistic.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Self

import numpy as np
from scipy.special import log_ndtr

from qmu_core.attacks.base import Attack, Observations, Reference, ThreatModel, balanced_threshold, logit_confidence

if TYPE_CHECKING:
    import pandas as pd

    from qmu_core.config import AttackConfig

__all__ = ["VAR_FLOOR_ABS", "VAR_FLOOR_REL", "LiraOffline", "LiraOnline", "lira_statistic"]

VAR_FLOOR_ABS = 1e-8
"""No variance is smaller (statistics that never vary, e.g. saturated softmax outputs)."""

VAR_FLOOR_REL = 0.01
"""With ``fixed_variance=False``, no per-record variance is below this fraction of the pooled one."""


def lira_statistic(obs: Observations) -> np.ndarray:
    """``(R, D)`` LiRA statistic: ``D = 1`` under ``probs`` and ``labels``, ``D = Q`` under ``expectations``."""
    if obs.threat_model == "probs":
        return logit_confidence(obs)[:, None]
    if obs.threat_model == "expectations":
        if obs.z is None:
            raise ValueError("LiRA under `expectations` needs the ⟨Z⟩ read-out.")
        return np.asarray(obs.z, dtype=np.float64)
    if obs.correct is None:
        raise ValueError("LiRA under `labels` needs the correct flags.")
    return obs.correct.astype(np.float64)[:, None]


@dataclass(frozen=True)
class _Sums:
    """Per-record counts, sums and sums of squares of the statistic on one side (IN or OUT)."""

    n: np.ndarray  # (R,)
    s1: np.ndarray  # (R, D)
    s2: np.ndarray  # (R, D)

    @classmethod
    def of(cls, stats: np.ndarray, side: np.ndarray) -> _Sums:
        """Sums over the models where ``side[m, r]`` (stats ``(M, R, D)``, side ``(M, R)`` bool)."""
        w = side.astype(np.float64)
        return cls(w.sum(axis=0), np.einsum("mr,mrd->rd", w, stats), np.einsum("mr,mrd->rd", w, stats**2))

    def without(self, stat: np.ndarray, side: np.ndarray) -> _Sums:
        """The sums without one model's share (``stat`` ``(R, D)``, ``side`` ``(R,)`` bool)."""
        w = side.astype(np.float64)
        return _Sums(self.n - w, self.s1 - w[:, None] * stat, self.s2 - w[:, None] * stat**2)


@dataclass(frozen=True)
class _Side:
    """One side's per-record Gaussian before the missing-record fallback."""

    present: np.ndarray  # (R,) bool: at least one observation
    mean: np.ndarray  # (R, D), 0 where absent
    var: np.ndarray  # (R, D), floored
    pooled: np.ndarray  # (D,) pooled variance, NaN if the side is empty


def _side(sums: _Sums, fixed_variance: bool) -> _Side:
    n = sums.n[:, None]
    present = sums.n > 0.5
    mean = sums.s1 / np.maximum(n, 1.0)
    ss = np.maximum(sums.s2 - sums.s1 * mean, 0.0)  # squared deviations from each record's mean
    dof = np.maximum(sums.n - 1.0, 0.0).sum()
    total = sums.n.sum()
    if dof > 0.5:
        pooled = ss.sum(axis=0) / dof
    elif total > 0.5:  # at most one observation per record: the spread over all observations
        pooled = sums.s2.sum(axis=0) / total - (sums.s1.sum(axis=0) / total) ** 2
    else:
        pooled = np.full(sums.s1.shape[1], np.nan)
    pooled = np.maximum(pooled, VAR_FLOOR_ABS)  # NaN stays NaN
    if fixed_variance:
        var = np.broadcast_to(pooled, mean.shape)
    else:
        own = ss / np.maximum(n - 1.0, 1.0)
        var = np.where(n > 1.5, np.maximum(own, VAR_FLOOR_REL * pooled), pooled)
    return _Side(present, mean, var, pooled)


@dataclass(frozen=True)
class _Gaussians:
    """Per-record IN and OUT Gaussians, ``(R, D)`` each, every record filled in."""

    mu_in: np.ndarray
    var_in: np.ndarray
    mu_out: np.ndarray
    var_out: np.ndarray
    shift: np.ndarray  # (R, D): mean IN-minus-OUT of records with both sides (NaN where none)


def _gaussians(ins: _Sums, outs: _Sums, fixed_variance: bool) -> _Gaussians:
    a, b = _side(ins, fixed_variance), _side(outs, fixed_variance)
    both = a.present & b.present
    diff = a.mean - b.mean
    shift = diff[both].mean(axis=0) if both.any() else np.zeros(diff.shape[1])
    # A missing record takes its side's pooled variance, or the other side's if nobody observed this one.
    var_in = np.where(a.present[:, None], a.var, np.where(np.isfinite(a.pooled), a.pooled, b.pooled))
    var_out = np.where(b.present[:, None], b.var, np.where(np.isfinite(b.pooled), b.pooled, a.pooled))
    mu_in = np.where(a.present[:, None], a.mean, b.mean + shift)
    mu_out = np.where(b.present[:, None], b.mean, a.mean - shift)
    return _Gaussians(mu_in, var_in, mu_out, var_out, np.where(both[:, None], diff, np.nan))


def _widened(g: _Gaussians, extra: np.ndarray | None) -> _Gaussians:
    """`g` with `extra` ``(R, D)`` added to both sides' variances (None: `g` itself)."""
    if extra is None:
        return g
    return _Gaussians(g.mu_in, g.var_in + extra, g.mu_out, g.var_out + extra, g.shift)


def _log_normal(s: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    return -0.5 * (np.log(2.0 * np.pi * var) + (s - mu) ** 2 / var)


class _Lira(Attack):
    """Shared fitting, leave-one-model-out threshold and scoring of both LiRA variants.

    Args:
        fixed_variance: One variance per side and dimension pooled over records (True, for few
            reference models) or a per-record variance (False).
    """

    def __init__(self, fixed_variance: bool = True) -> None:
        self.fixed_variance = fixed_variance
        self._gauss: _Gaussians | None = None
        self._orient: np.ndarray | None = None
        self._threat_model: ThreatModel | None = None

    @classmethod
    def from_config(cls, config: AttackConfig, splits: pd.DataFrame, *, seed: int) -> Self:
        """LiRA with ``attack.lira_fixed_variance``."""
        return cls(fixed_variance=config.lira_fixed_variance)

    def fit(self, reference: Reference) -> _Lira:
        """Fit the per-record Gaussians and the leave-one-model-out threshold.

        Raises:
            ConfigError: If the attack does not apply to `reference` (`applicable`).
        """
        return self._fit(reference, None)

    def fit_shot_aware(self, exact: Reference, measured: Reference) -> _Lira:
        """Shot-aware LiRA (module doc): Gaussians from `exact`, widened by the shot variance `measured` shows.

        Args:
            exact: The reference models' infinite-shot observations under the device's noise.
            measured: The same reference models on the same records, measured at the target's shot count.

        Raises:
            ConfigError: If the attack does not apply to `exact` (`applicable`).
            ValueError: If `measured` is not the same models and records as `exact`.
        """
        if measured.membership.shape != exact.membership.shape or not np.array_equal(
            measured.membership, exact.membership
        ):
            raise ValueError("Shot-aware LiRA needs the same reference models and records measured and exact.")
        return self._fit(exact, measured)

    def _fit(self, reference: Reference, measured: Reference | None) -> _Lira:
        self.require(reference)
        stats = np.stack([lira_statistic(obs) for obs in reference.models])
        scored, extra = stats, None
        if measured is not None:
            scored = np.stack([lira_statistic(obs) for obs in measured.models])
            extra = ((scored - stats) ** 2).mean(axis=0)
        member = np.asarray(reference.membership, dtype=bool)
        ins, outs = _Sums.of(stats, member), _Sums.of(stats, ~member)
        self._threat_model = reference.threat_model
        self._gauss = _widened(_gaussians(ins, outs, self.fixed_variance), extra)
        self._orient = self._orientation(reference.models[0].label, self._gauss.shift)
        m = reference.n_models
        if m < 2 or member.all() or not member.any():
            self.threshold = self._natural_threshold(stats.shape[2])
            return self
        scores = np.empty(member.shape)
        for i in range(m):
            held_out = _gaussians(
                ins.without(stats[i], member[i]), outs.without(stats[i], ~member[i]), self.fixed_variance
            )
            scores[i] = self._score(scored[i], _widened(held_out, extra), self._orient)
        self.threshold = balanced_threshold(scores, member)
        return self

    def _orientation(self, label: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """``(R, D)`` ±1: direction of membership per record and dimension (see the module doc)."""
        if self._threat_model != "expectations":
            return np.ones_like(shift)
        orient = np.ones_like(shift)
        known = ~np.isnan(shift).any(axis=1)
        for c in np.unique(label):
            rows = label == c
            if (rows & known).any():
                orient[rows] = np.where(shift[rows & known].sum(axis=0) < 0.0, -1.0, 1.0)
        return orient

    def score(self, target: Observations) -> np.ndarray:
        """``(R,)`` LiRA scores of one model's observations (finite; higher = member)."""
        if self._gauss is None or self._orient is None:
            raise ValueError(f"Attack {self.name!r} must be fitted before it scores.")
        if target.threat_model != self._threat_model:
            raise ValueError(
                f"Attack {self.name!r} was fitted under {self._threat_model!r}, not {target.threat_model!r}."
            )
        stat = lira_statistic(target)
        if stat.shape != self._gauss.mu_in.shape:
            raise ValueError(f"Observations of shape {stat.shape}; the attack was fitted on {self._gauss.mu_in.shape}.")
        return self._score(stat, self._gauss, self._orient)

    @abstractmethod
    def _score(self, stat: np.ndarray, g: _Gaussians, orient: np.ndarray) -> np.ndarray:
        """``(R,)`` scores of statistics ``(R, D)`` under Gaussians `g`."""

    @abstractmethod
    def _natural_threshold(self, n_dims: int) -> float:
        """The threshold used when no leave-one-model-out threshold can be fitted."""


class LiraOffline(_Lira):
    """Offline LiRA: one-sided test of the target's statistic against the OUT Gaussian."""

    name: ClassVar[str] = "lira_offline"

    def _score(self, stat: np.ndarray, g: _Gaussians, orient: np.ndarray) -> np.ndarray:
        z = orient * (stat - g.mu_out) / np.sqrt(g.var_out)
        return np.asarray(log_ndtr(z).sum(axis=1), dtype=np.float64)

    def _natural_threshold(self, n_dims: int) -> float:
        return float(n_dims * np.log(0.5))


class LiraOnline(_Lira):
    """Online LiRA: log likelihood ratio of the IN and OUT Gaussians."""

    name: ClassVar[str] = "lira_online"
    online: ClassVar[bool] = True

    def _score(self, stat: np.ndarray, g: _Gaussians, orient: np.ndarray) -> np.ndarray:
        llr = _log_normal(stat, g.mu_in, g.var_in) - _log_normal(stat, g.mu_out, g.var_out)
        return np.asarray(llr.sum(axis=1), dtype=np.float64)

    def _natural_threshold(self, n_dims: int) -> float:
        return 0.0
