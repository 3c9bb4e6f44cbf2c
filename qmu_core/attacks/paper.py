"""The paper's attack: an MLP on per-record output features (``paper``).

Features per threat model (`features`):

* ``probs``: the paper's 13 for 10 classes: the probabilities, the max probability, a
  correct-prediction flag and the per-record cross-entropy ``-log p(y)``;
* ``expectations``: the ⟨Z⟩ read-out and the one-hot true label;
* ``labels``: the correct-prediction flag alone.

Two protocols (``attack.protocol``):

* ``shadow`` (sound): fitted on the reference models' outputs, members vs non-members of each
  model's training half, on the rows those halves were drawn from;
* ``paper`` (to reproduce the paper's numbers): fitted on the target's own outputs, target
  members vs target non-members, on a seeded 80 % of them; most audited records are then in the
  attack's training set, the paper's weakness (../shared/PAPER.md).

The classifier (``attack.classifier``) is the paper's 64-64 ReLU MLP or logistic regression from
scikit-learn; `AttackModel` keeps its weights and scores with a small NumPy forward pass that
the tests check against scikit-learn. The "member" call is ``score > attack.threshold`` (0.5).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import pandas as pd

from qmu_core import frames
from qmu_core.attacks.base import AUDITED_ROLES, Attack, Observations, Reference, true_class_prob
from qmu_core.config import AttackConfig, derive_seed
from qmu_core.errors import ConfigError
from qmu_core.membership import reference_rows
from qmu_core.numeric import safe_divisor

__all__ = ["MAX_TRAIN_ROWS", "AttackModel", "PaperAttack", "features", "fit_classifier", "paper_protocol_rows"]

MAX_TRAIN_ROWS = 4000
"""The MLP trains on at most this many (model, record) rows, a seeded random subset (the paper
used 800): enough for 13 features, and it keeps the fit to seconds with many reference models."""

# Share of the target's members and non-members the `paper` protocol trains its MLP on.
PAPER_TRAIN_SHARE = 0.8


def features(obs: Observations) -> np.ndarray:
    """The attack's input features per record under the observation's threat model (module doc)."""
    if obs.threat_model == "probs":
        assert obs.probs is not None and obs.correct is not None
        return np.column_stack(
            [obs.probs, obs.probs.max(axis=1), obs.correct.astype(np.float64), -np.log(true_class_prob(obs))]
        )
    if obs.threat_model == "expectations":
        assert obs.z is not None
        n_classes = int(obs.label.max()) + 1 if obs.n_records else 0
        return np.column_stack([obs.z, np.eye(max(n_classes, 1))[obs.label]])
    assert obs.correct is not None
    return obs.correct.astype(np.float64)[:, None]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


@dataclass(frozen=True)
class AttackModel:
    """A fitted classifier: standardization, then ReLU layers and a sigmoid output."""

    kind: str
    mean: np.ndarray
    scale: np.ndarray
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    def score(self, x: np.ndarray) -> np.ndarray:
        """Membership score in [0, 1] per row; higher means more likely a member."""
        h = (x - self.mean) / self.scale
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.maximum(h @ w + b, 0.0)
        return _sigmoid(h @ self.weights[-1] + self.biases[-1]).ravel()

    def to_frame(self) -> pd.DataFrame:
        """Long form (name, shape, values) for storing the fitted classifier."""
        items = {"kind:" + self.kind: np.zeros(0), "mean": self.mean, "scale": self.scale}
        items |= {f"w{i}": w for i, w in enumerate(self.weights)}
        items |= {f"b{i}": b for i, b in enumerate(self.biases)}
        return frames.tensor_rows(items, name="name")

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> AttackModel:
        """Rebuild from `to_frame` output."""
        arrays = frames.arrays(frame, name="name")
        kind = next(n.split(":", 1)[1] for n in arrays if n.startswith("kind:"))
        n_layers = sum(1 for n in arrays if n.startswith("w"))
        return cls(
            kind=kind,
            mean=arrays["mean"],
            scale=arrays["scale"],
            weights=tuple(arrays[f"w{i}"] for i in range(n_layers)),
            biases=tuple(arrays[f"b{i}"] for i in range(n_layers)),
        )


def fit_classifier(x: np.ndarray, y: np.ndarray, attack: AttackConfig, *, seed: int) -> tuple[AttackModel, object]:
    """Fit the membership classifier on features `x` and membership `y`.

    Returns:
        ``(AttackModel, fitted scikit-learn estimator)``; the estimator is for cross-checks.

    Raises:
        ConfigError: If `y` holds only members or only non-members.
    """
    y = np.asarray(y).astype(int)
    if len(y) == 0 or y.min() == y.max():
        raise ConfigError(
            "The attack's training rows hold only one membership class, so no attack can be fitted; "
            "check attack.n_shadow >= 1 and data.n_shadow_pool >= 8."
        )
    mean = x.mean(axis=0)
    scale = safe_divisor(x.std(axis=0))
    xs = (x - mean) / scale
    # Small matrices: BLAS threads only contend (8x slower on 2 busy cores), so one thread.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _fit(xs, y, mean, scale, attack, seed)


def _fit(
    xs: np.ndarray, y: np.ndarray, mean: np.ndarray, scale: np.ndarray, attack: AttackConfig, seed: int
) -> tuple[AttackModel, object]:
    est: Any
    if attack.classifier == "mlp":
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        est = MLPClassifier(
            hidden_layer_sizes=(64, 64),
            learning_rate_init=0.01,
            alpha=1e-3,
            max_iter=attack.max_iter,
            random_state=seed % (2**32),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(xs, y)
        weights = tuple(np.asarray(w) for w in est.coefs_)
        biases = tuple(np.asarray(b) for b in est.intercepts_)
    else:
        from sklearn.linear_model import LogisticRegression

        est = LogisticRegression(max_iter=attack.max_iter, random_state=seed % (2**32)).fit(xs, y)
        weights = (est.coef_.T.copy(),)
        biases = (est.intercept_.copy(),)
    return AttackModel(attack.classifier, mean, scale, weights, biases), est


class PaperAttack(Attack):
    """The paper's MLP attack (module doc).

    Args:
        config: Classifier, iterations and threshold.
        rows: ``(R,)`` bool, the records whose (model, record) pairs train the classifier: the
            rows the reference models drew their halves from (``shadow``), or the 80 % subset
            of the target's members and non-members (``paper``).
        seed: Seed of the classifier.
    """

    name = "paper"

    def __init__(self, config: AttackConfig, rows: np.ndarray, *, seed: int) -> None:
        self.config = config
        self.rows = np.asarray(rows, dtype=bool)
        self.seed = seed
        self.threshold = config.threshold
        self.model: AttackModel | None = None
        self.train_acc = float("nan")

    @classmethod
    def from_config(cls, config: AttackConfig, splits: pd.DataFrame, *, seed: int) -> Self:
        """The attack on the rows ``attack.protocol`` picks.

        These are the reference models' (``shadow``, by ``attack.reference``) or `paper_protocol_rows`.
        """
        rows = (
            paper_protocol_rows(splits, seed=seed)
            if config.protocol == "paper"
            else reference_rows(splits, config.reference)
        )
        return cls(config, rows, seed=derive_seed(seed, "attack"))

    def fit(self, reference: Reference) -> PaperAttack:
        """Train the MLP on the reference models' observations of its rows (labels: membership). Returns self."""
        x = np.concatenate([features(obs)[self.rows] for obs in reference.models])
        y = np.concatenate([m[self.rows] for m in reference.membership])
        if len(y) > MAX_TRAIN_ROWS:
            keep = np.random.default_rng(self.seed).choice(len(y), MAX_TRAIN_ROWS, replace=False)
            x, y = x[keep], y[keep]
        self.model, _ = fit_classifier(x, y, self.config, seed=self.seed)
        self.train_acc = float(((self.model.score(x) > self.threshold) == y).mean())
        return self

    def score(self, target: Observations) -> np.ndarray:
        """``(R,)`` membership scores: the fitted MLP's score of each record's features."""
        if self.model is None:
            raise RuntimeError("PaperAttack.score before fit.")
        return self.model.score(features(target))


def paper_protocol_rows(splits: pd.DataFrame, *, seed: int) -> np.ndarray:
    """The `paper` protocol's training rows: a seeded 80 % of the target's members and non-members."""
    audited = np.flatnonzero(splits["role"].isin(AUDITED_ROLES).to_numpy())
    rng = np.random.default_rng(derive_seed(seed, "paper-protocol"))
    chosen = rng.choice(audited, size=int(round(PAPER_TRAIN_SHARE * len(audited))), replace=False)
    mask = np.zeros(len(splits), dtype=bool)
    mask[chosen] = True
    return mask
