"""The one interface every membership attack implements, and what attacks see.

An attack is fitted on *reference models* (the attacker's shadow models): their per-record
observations and the membership matrix (which reference model trained on which record). It
then scores any model's observations on the same records; a higher score means "more likely a
member". Each fitted attack also carries a decision `threshold`, fixed on reference data before
any target model is scored (the paper's "member" call, the balanced accuracy and the forget
success use it).

What the attacker observes is the *threat model* (`THREAT_MODELS`):

* ``probs``: every record's class-probability vector and its true label (gray-box, the paper's);
* ``expectations``: the circuit's raw ⟨Z⟩ read-out per qubit and the true label (the classical
  head stays hidden);
* ``labels``: only whether the predicted label is the true one (label-only).

An attack that cannot work under a threat model says so in `supports`; the report shows it as
"not applicable" rather than a number.

Records are always in one fixed order (the split table's), the same for every model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal, Self

import numpy as np
import pandas as pd

from qmu_core import frames
from qmu_core.errors import ConfigError

if TYPE_CHECKING:
    from qmu_core.config import AttackConfig

__all__ = [
    "AUDITED_ROLES",
    "THREAT_MODELS",
    "Attack",
    "Observations",
    "Reference",
    "ThreatModel",
    "balanced_threshold",
    "logit_confidence",
    "true_class_prob",
]

# The records every attack is scored and judged on: target members and non-members.
AUDITED_ROLES = ("target_train", "target_holdout")

ThreatModel = Literal["probs", "expectations", "labels"]
THREAT_MODELS: tuple[ThreatModel, ...] = ("probs", "expectations", "labels")

# Probabilities below this count as this (float32 softmax outputs reach exactly 0 and 1).
PROB_FLOOR = 1e-30


@dataclass(frozen=True)
class Observations:
    """What the attacker sees of one model on every record, under one threat model.

    Attributes:
        threat_model: One of `THREAT_MODELS`.
        label: ``(R,)`` class index (0..C-1) of each record's true label (always known).
        probs: ``(R, C)`` class probabilities (float64); only under ``probs``.
        z: ``(R, Q)`` ⟨Z⟩ per qubit (float64); only under ``expectations``.
        correct: ``(R,)`` bool, predicted label == true label; under ``probs`` and ``labels``.
    """

    threat_model: ThreatModel
    label: np.ndarray
    probs: np.ndarray | None = None
    z: np.ndarray | None = None
    correct: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.label)
        for name in ("probs", "z", "correct"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"Observations.{name} has {len(value)} rows, label has {n}.")

    @property
    def n_records(self) -> int:
        """Number of records observed."""
        return len(self.label)

    @classmethod
    def from_outputs(cls, outputs: pd.DataFrame, classes: Sequence[int], threat_model: ThreatModel) -> Observations:
        """Observations from a model's `outputs` table (columns ``label``, ``prob``, ``z``, ``correct``).

        Raises:
            ConfigError: If `threat_model` is unknown.
        """
        if threat_model not in THREAT_MODELS:
            raise ConfigError(f"Unknown threat model {threat_model!r}; choose one of {', '.join(THREAT_MODELS)}.")
        index = {int(c): i for i, c in enumerate(classes)}
        label = np.array([index[int(v)] for v in outputs["label"].to_numpy()], dtype=np.int64)
        if threat_model == "probs":
            return cls(
                threat_model,
                label,
                probs=frames.stack(outputs["prob"], np.float64),
                correct=outputs["correct"].to_numpy().astype(bool),
            )
        if threat_model == "expectations":
            return cls(threat_model, label, z=frames.stack(outputs["z"], np.float64))
        return cls(threat_model, label, correct=outputs["correct"].to_numpy().astype(bool))


@dataclass(frozen=True)
class Reference:
    """The attacker's reference models: observations, membership matrix and population records.

    Attributes:
        models: ``M`` observations, one per reference model, all on the same ``R`` records.
        membership: ``(M, R)`` bool; ``membership[m, r]``: model ``m`` trained on record ``r``.
        population: ``(R,)`` bool; records that are never target members (the shadow pool), which
            RMIA compares against and a threshold may be calibrated on.
    """

    models: tuple[Observations, ...]
    membership: np.ndarray
    population: np.ndarray

    def __post_init__(self) -> None:
        m, r = self.membership.shape
        if m != len(self.models):
            raise ValueError(f"membership has {m} rows for {len(self.models)} reference models.")
        if any(o.n_records != r for o in self.models) or len(self.population) != r:
            raise ValueError(f"every reference model and the population mask must cover the {r} records.")

    @property
    def n_models(self) -> int:
        """Number of reference models ``M``."""
        return len(self.models)

    @property
    def threat_model(self) -> ThreatModel:
        """The threat model every reference observation was taken under."""
        return self.models[0].threat_model

    @property
    def has_in_models(self) -> bool:
        """True if some record outside the population was trained on by some reference model.

        That happens with ``population`` reference models; only then do online attacks apply.
        """
        return bool(self.membership[:, ~self.population].any())


def true_class_prob(obs: Observations) -> np.ndarray:
    """``p(y | x)`` per record, floored at `PROB_FLOOR` (needs ``probs``)."""
    if obs.probs is None:
        raise ValueError("true_class_prob needs the `probs` threat model.")
    return np.maximum(obs.probs[np.arange(obs.n_records), obs.label], PROB_FLOOR)


def logit_confidence(obs: Observations) -> np.ndarray:
    """LiRA's statistic: ``log p_y - log(sum of the other classes' p)`` per record (needs ``probs``).

    Computed from the other classes' probabilities directly (not ``1 - p_y``), so it keeps its
    precision when the softmax saturates.
    """
    if obs.probs is None:
        raise ValueError("logit_confidence needs the `probs` threat model.")
    p_true = true_class_prob(obs)
    mask = np.ones_like(obs.probs, dtype=bool)
    mask[np.arange(obs.n_records), obs.label] = False
    others = np.where(mask, obs.probs, 0.0).sum(axis=1)
    return np.log(p_true) - np.log(np.maximum(others, PROB_FLOOR))


class Attack(ABC):
    """One membership inference attack: fit on reference models, then score any model.

    Subclasses set `name`, `supports` (the threat models they work under) and `online` (True if
    they need reference models trained WITH the scored records: ``attack.reference=population``).
    After `fit`, `threshold` holds the score above which a record is called "member", chosen on
    reference data only.
    """

    name: ClassVar[str]
    supports: ClassVar[frozenset[str]] = frozenset(THREAT_MODELS)
    online: ClassVar[bool] = False

    threshold: float = float("nan")

    @classmethod
    def from_config(cls, config: AttackConfig, splits: pd.DataFrame, *, seed: int) -> Self:
        """The unfitted attack with its settings from `config`, for the split `splits` and root seed `seed`.

        The settings are the fields its `qmu_core.config.ATTACKS` entry reads. The attacks
        without settings take none.
        """
        return cls()

    def applicable(self, reference: Reference) -> str | None:
        """None if this attack can run on `reference`, else the reason it cannot (for the report)."""
        if reference.threat_model not in self.supports:
            return f"needs threat model {' or '.join(sorted(self.supports))}, not {reference.threat_model!r}"
        if self.online and not reference.has_in_models:
            return "needs reference models trained on the audited records (attack.reference=population)"
        return None

    def require(self, reference: Reference) -> None:
        """Raise `ConfigError` if this attack cannot run on `reference` (`applicable` says why)."""
        reason = self.applicable(reference)
        if reason is not None:
            raise ConfigError(f"Attack {self.name!r} cannot run: {reason}.")

    @abstractmethod
    def fit(self, reference: Reference) -> Attack:
        """Learn from the reference models; sets `threshold`. Returns self."""

    @abstractmethod
    def score(self, target: Observations) -> np.ndarray:
        """``(R,)`` membership scores of one model's observations; higher = more likely member."""


def balanced_threshold(scores: np.ndarray, is_member: np.ndarray) -> float:
    """The threshold ``t`` maximising balanced accuracy ``(TPR + TNR) / 2`` of the call ``score > t``.

    Every cut between two consecutive distinct scores is tried, plus "everyone is a member" and
    "no one is"; a cut between two scores sits at their midpoint. Ties between equally good cuts
    go to the lowest threshold.

    Args:
        scores: Finite scores, any shape.
        is_member: Bool membership of each score, same shape.

    Raises:
        ValueError: If a score is not finite or one membership class is empty (balanced accuracy
            is then undefined).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(is_member, dtype=bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} membership flags.")
    if not np.isfinite(s).all():
        raise ValueError("balanced_threshold needs finite scores.")
    n_in, n_out = int(y.sum()), int((~y).sum())
    if n_in == 0 or n_out == 0:
        raise ValueError("balanced_threshold needs both members and non-members.")
    values, inverse = np.unique(s, return_inverse=True)
    ins = np.bincount(inverse, weights=y.astype(np.float64), minlength=len(values))
    outs = np.bincount(inverse, weights=(~y).astype(np.float64), minlength=len(values))
    # Cut k (k = 0..K) calls the values[k:] members: TPR = members at or above values[k].
    tpr = np.concatenate([np.cumsum(ins[::-1])[::-1], [0.0]]) / n_in
    tnr = np.concatenate([[0.0], np.cumsum(outs)]) / n_out
    k = int(np.argmax(tpr + tnr))
    if k == 0:
        return float(np.nextafter(values[0], -np.inf))
    if k == len(values):
        return float(values[-1])
    lo, hi = values[k - 1], values[k]
    mid = lo + (hi - lo) / 2.0
    return float(mid if lo <= mid < hi else lo)
