"""The gray-box shadow-model membership inference attack (the paper's features).

The attacker sees each record's class-probability vector and knows its true label. From these
it builds the paper's features: the probabilities, the max probability, a correct-prediction
flag and the per-record loss. An attack classifier is fitted on shadow models' outputs (members
vs non-members of each shadow's training half) and then scores any model's outputs.

The fitted attack is stored as Parquet (scaler and layer weights), never pickled, and scored
with a small NumPy forward pass that the tests check against scikit-learn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qmu_core import frames
from qmu_core.artifacts import Output
from qmu_core.config import AttackConfig, derive_seed
from qmu_core.errors import ConfigError
from qmu_core.membership import shadow_rows, true_members
from qmu_core.numeric import safe_divisor
from qmu_core.provenance import AttackFacts

__all__ = ["AttackModel", "attack_features", "fit_attack", "fit_shadow_attack", "score", "score_outputs"]


def attack_features(outputs: pd.DataFrame) -> np.ndarray:
    """Features (N, n_classes + 3): probabilities, max probability, correct flag, loss."""
    probs = frames.stack(outputs["prob"], np.float64)
    return np.column_stack(
        [
            probs,
            probs.max(axis=1),
            outputs["correct"].to_numpy().astype(np.float64),
            outputs["loss"].to_numpy().astype(np.float64),
        ]
    )


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


@dataclass(frozen=True)
class AttackModel:
    """A fitted attack: standardization, then ReLU layers and a sigmoid output."""

    kind: str
    mean: np.ndarray
    scale: np.ndarray
    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]

    def score(self, features: np.ndarray) -> np.ndarray:
        """Membership score in [0, 1] per row; higher means more likely a member."""
        h = (features - self.mean) / self.scale
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = np.maximum(h @ w + b, 0.0)
        return _sigmoid(h @ self.weights[-1] + self.biases[-1]).ravel()

    def to_frame(self) -> pd.DataFrame:
        """Long form for the `attack_model` artifact."""
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


def fit_attack(shadow_outputs: pd.DataFrame, attack: AttackConfig, *, seed: int) -> tuple[AttackModel, object]:
    """Fit the membership classifier on shadow models' outputs.

    Args:
        shadow_outputs: One row per (shadow model, record); needs ``is_member`` and the
            columns `attack_features` reads.
        attack: Classifier choice and iterations.
        seed: Seed of the classifier's initialization and solver.

    Returns:
        ``(AttackModel, fitted scikit-learn estimator)``; the estimator is for cross-checks.

    Raises:
        ConfigError: If the shadow outputs hold only members or only non-members.
    """
    y = shadow_outputs["is_member"].to_numpy().astype(int)
    if y.min() == y.max():
        raise ConfigError(
            "The shadow outputs hold only one membership class, so no attack can be fitted; "
            "check attack.n_shadow >= 1 and data.n_shadow_pool >= 8."
        )
    x = attack_features(shadow_outputs)
    mean = x.mean(axis=0)
    scale = safe_divisor(x.std(axis=0))
    xs = (x - mean) / scale
    if attack.classifier == "mlp":
        from sklearn.neural_network import MLPClassifier

        est = MLPClassifier(
            hidden_layer_sizes=(64, 64),
            learning_rate_init=0.01,
            alpha=1e-3,
            max_iter=attack.max_iter,
            random_state=seed % (2**32),
        )
        import warnings

        from sklearn.exceptions import ConvergenceWarning

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


def score_outputs(model: AttackModel, outputs: pd.DataFrame, *, members: np.ndarray) -> pd.DataFrame:
    """Score every row of a model's outputs (the `mia_scores` artifact)."""
    return pd.DataFrame(
        {
            "model_id": outputs["model_id"].to_numpy(),
            "sample_id": outputs["sample_id"].to_numpy(),
            "role": outputs["role"].to_numpy(),
            "is_forget": outputs["is_forget"].to_numpy(),
            "attack": f"shadow_{model.kind}",
            "score": model.score(attack_features(outputs)),
            "is_member": members,
        }
    )


def fit_shadow_attack(
    splits: pd.DataFrame, shadow_outputs: Sequence[pd.DataFrame], attack: AttackConfig, *, seed: int
) -> Output:
    """The `attack_model` stage: fit the classifier on every shadow model's pool records."""
    rows = shadow_rows(splits, shadow_outputs, seed=seed)
    model, _ = fit_attack(rows, attack, seed=derive_seed(seed, "attack"))
    called = model.score(attack_features(rows)) > attack.threshold
    train_acc = float((called == rows["is_member"].to_numpy()).mean())
    facts = AttackFacts(shadow_train_acc=train_acc, n_rows=len(rows), classifier=attack.classifier)
    return Output(model.to_frame(), facts)


def score(attack_model: pd.DataFrame, outputs: pd.DataFrame) -> Output:
    """The `mia_scores` stage: the frozen attack applied to one model's outputs."""
    model = AttackModel.from_frame(attack_model)
    return Output(score_outputs(model, outputs, members=true_members(outputs)))
