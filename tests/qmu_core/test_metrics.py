from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from qmu_core import metrics


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + 0.5 * y, 1)  # rounding creates ties
    assert metrics.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_tpr_at_fpr_matches_the_roc_curve(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 400)
    s = rng.normal(size=400) + y
    fpr, tpr, _ = roc_curve(y, s)
    for target in (0.01, 0.1):
        assert metrics.tpr_at_fpr(y, s, target) == pytest.approx(tpr[fpr <= target].max())


def test_membership_metrics_on_a_known_case() -> None:
    scores = pd.DataFrame(
        {
            "role": ["target_train"] * 4 + ["target_holdout"] * 4,
            "is_forget": [True, True, False, False, True, False, False, False],
            "score": [0.9, 0.2, 0.8, 0.7, 0.6, 0.1, 0.3, 0.4],
        }
    )
    m = metrics.membership_metrics(scores, threshold=0.5)
    assert m["mia_forget_success"] == 0.5
    assert m["mia_forget_control"] == 1.0
    assert m["mia_balanced_acc"] == pytest.approx(0.5 * (3 / 4 + 3 / 4))
    assert m["mia_auc"] == pytest.approx(roc_auc_score([1] * 4 + [0] * 4, scores["score"]))
