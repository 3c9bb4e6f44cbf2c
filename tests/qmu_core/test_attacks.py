from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qmu_core.attacks import paper as attacks
from qmu_core.config import AttackConfig
from qmu_core.errors import ConfigError


def _outputs(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    member = rng.random(n) < 0.5
    logits = rng.normal(size=(n, 4)) + 2.0 * member[:, None] * np.eye(4)[rng.integers(0, 4, n)]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    label = probs.argmax(1) if seed else rng.integers(0, 4, n)
    return pd.DataFrame(
        {
            "model_id": "shadow-00",
            "sample_id": np.arange(n),
            "role": "shadow_pool",
            "is_forget": label == 1,
            "prob": list(probs.astype(np.float32)),
            "loss": -np.log(probs[np.arange(n), label]),
            "correct": probs.argmax(1) == label,
            "is_member": member,
        }
    )


@pytest.mark.parametrize("kind", ["mlp", "logistic"])
def test_stored_attack_scores_like_sklearn(kind: str) -> None:
    rows = _outputs(400, seed=1)
    model, est = attacks.fit_attack(rows, AttackConfig(classifier=kind, max_iter=200), seed=0)
    x = attacks.attack_features(rows)
    expected = est.predict_proba((x - model.mean) / model.scale)[:, 1]
    np.testing.assert_allclose(model.score(x), expected, atol=1e-9)
    again = attacks.AttackModel.from_frame(model.to_frame())
    np.testing.assert_allclose(again.score(x), expected, atol=1e-9)


def test_features_are_the_papers_thirteen_for_ten_classes() -> None:
    rows = _outputs(10, seed=2)
    x = attacks.attack_features(rows)
    assert x.shape == (10, 4 + 3)
    np.testing.assert_allclose(x[:, 4], np.stack(rows["prob"]).max(1), rtol=1e-6)


def test_one_class_shadow_data_is_refused() -> None:
    rows = _outputs(50, seed=3).assign(is_member=True)
    with pytest.raises(ConfigError, match="only one membership class"):
        attacks.fit_attack(rows, AttackConfig(), seed=0)
