"""The paper's MLP attack: stored weights score like scikit-learn, features per threat model."""

from __future__ import annotations

import numpy as np
import pytest

from qmu_core.attacks import paper
from qmu_core.attacks.base import Observations, Reference
from qmu_core.config import AttackConfig
from qmu_core.errors import ConfigError


def _observations(n: int, seed: int) -> tuple[Observations, np.ndarray]:
    rng = np.random.default_rng(seed)
    member = rng.random(n) < 0.5
    label = rng.integers(0, 4, n)
    logits = rng.normal(size=(n, 4)) + 2.0 * member[:, None] * np.eye(4)[label]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    obs = Observations("probs", label, probs=probs, correct=probs.argmax(1) == label)
    return obs, member


@pytest.mark.parametrize("kind", ["mlp", "logistic"])
def test_stored_attack_scores_like_sklearn(kind: str) -> None:
    obs, member = _observations(400, seed=1)
    x = paper.features(obs)
    model, est = paper.fit_classifier(x, member, AttackConfig(classifier=kind, max_iter=200), seed=0)
    expected = est.predict_proba((x - model.mean) / model.scale)[:, 1]  # type: ignore[attr-defined]
    np.testing.assert_allclose(model.score(x), expected, atol=1e-9)
    again = paper.AttackModel.from_frame(model.to_frame())
    np.testing.assert_allclose(again.score(x), expected, atol=1e-9)


def test_features_are_the_papers_thirteen_for_ten_classes() -> None:
    obs, _ = _observations(10, seed=2)
    x = paper.features(obs)
    assert x.shape == (10, 4 + 3)
    assert obs.probs is not None
    np.testing.assert_allclose(x[:, 4], obs.probs.max(1))
    np.testing.assert_allclose(x[:, 6], -np.log(obs.probs[np.arange(10), obs.label]))


def test_features_under_the_other_threat_models() -> None:
    label = np.array([0, 2, 1])
    z = np.array([[0.1, -0.2], [0.3, 0.4], [-0.5, 0.6]])
    x = paper.features(Observations("expectations", label, z=z))
    np.testing.assert_allclose(x, np.column_stack([z, np.eye(3)[label]]))
    x = paper.features(Observations("labels", label, correct=np.array([True, False, True])))
    np.testing.assert_allclose(x, [[1.0], [0.0], [1.0]])


def test_the_attack_learns_membership_from_reference_models() -> None:
    parts = [_observations(300, seed=s) for s in (3, 4, 5)]
    reference = Reference(tuple(o for o, _ in parts), np.stack([m for _, m in parts]), np.zeros(300, bool))
    attack = paper.PaperAttack(AttackConfig(max_iter=300), np.ones(300, bool), seed=0).fit(reference)
    target, member = _observations(300, seed=6)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(member, attack.score(target)) > 0.75
    assert attack.threshold == 0.5 and 0.6 < attack.train_acc <= 1.0


def test_one_class_training_data_is_refused() -> None:
    obs, _ = _observations(50, seed=3)
    with pytest.raises(ConfigError, match="only one membership class"):
        paper.fit_classifier(paper.features(obs), np.ones(50, bool), AttackConfig(), seed=0)
