from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qmu_core import metrics


def test_auc_on_a_hand_counted_case_with_ties() -> None:
    # members 0.9, 0.5, 0.5; non-members 0.5, 0.1: pairs won 1+1+1 + 1+0.5+0.5 (ties half) of 6
    y = np.array([1, 1, 1, 0, 0])
    s = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    assert metrics.roc_auc(y, s) == pytest.approx(5 / 6)
    assert metrics.roc_auc(1 - y, s) == pytest.approx(1 / 6)


def test_tpr_at_fpr_on_a_hand_counted_case() -> None:
    # 10 non-members 0.0..0.9; members 0.95, 0.85, 0.05. At FPR 0 only 0.95 beats every non-member.
    y = np.array([0] * 10 + [1, 1, 1])
    s = np.array([i / 10 for i in range(10)] + [0.95, 0.85, 0.05])
    assert metrics.tpr_at_fpr(y, s, 0.0) == pytest.approx(1 / 3)
    assert metrics.tpr_at_fpr(y, s, 0.1) == pytest.approx(2 / 3)  # threshold 0.85 admits 0.9
    assert metrics.tpr_at_fpr(y, s, 1.0) == pytest.approx(1.0)


def test_one_class_gives_nan() -> None:
    assert math.isnan(metrics.roc_auc(np.ones(3), np.arange(3)))
    assert math.isnan(metrics.tpr_at_fpr(np.zeros(3), np.arange(3), 0.1))


def _scores(is_forget: list[bool], score: list[float]) -> pd.DataFrame:
    """Four target members, then four non-members."""
    roles = ["target_train"] * 4 + ["target_holdout"] * 4
    return pd.DataFrame({"role": roles, "is_forget": is_forget, "score": score})


def _attack_metrics(scores: pd.DataFrame) -> dict:
    member = (scores["role"] == "target_train").to_numpy()
    return metrics.attack_metrics(scores["score"].to_numpy(), member, scores["is_forget"].to_numpy(), 0.5)


def test_attack_metrics_on_a_known_case() -> None:
    scores = _scores([True, True, False, False, True, False, False, False], [0.9, 0.2, 0.8, 0.7, 0.6, 0.1, 0.3, 0.4])
    m = _attack_metrics(scores)
    assert m["forget_success"] == 0.5
    assert m["forget_control"] == 1.0
    assert m["balanced_acc"] == pytest.approx(0.5 * (3 / 4 + 3 / 4))
    # 0.9, 0.8 and 0.7 beat all four non-members, 0.2 beats only 0.1: 13 of 16 pairs
    assert m["auc"] == pytest.approx(13 / 16)


def test_bootstrap_interval_covers_the_true_auc() -> None:
    from scipy.stats import norm

    shift = 0.5
    true_auc = float(norm.cdf(shift / np.sqrt(2)))  # members ~ N(shift, 1), non-members ~ N(0, 1)
    rng = np.random.default_rng(0)
    hits, widths = 0, []
    for rep in range(40):
        y = np.r_[np.ones(150, bool), np.zeros(150, bool)]
        s = np.r_[rng.normal(shift, 1, 150), rng.normal(0, 1, 150)]
        low, high = metrics.bootstrap_ci(y, s, n_boot=200, seed=rep)
        hits += low <= true_auc <= high
        widths.append(high - low)
    assert hits >= 34  # nominal 95 % of 40 = 38; allow for 200 resamples and chance
    assert 0.05 < float(np.mean(widths)) < 0.2


def test_forget_auc_and_the_baseline_on_a_known_case() -> None:
    scores = _scores([True, True, False, False, True, True, False, False], [0.9, 0.8, 0.1, 0.2, 0.3, 0.85, 0.7, 0.6])
    m = _attack_metrics(scores)
    assert m["forget_auc"] == pytest.approx(0.75)  # 0.9 beats both, 0.8 beats only 0.3
    assert m["forget_auc_ci"][0] <= 0.75 <= m["forget_auc_ci"][1]
    outputs = scores.assign(correct=[True, True, True, False, False, True, False, False])
    gap = metrics.gap_metrics(outputs)
    assert gap["gap_balanced_acc"] == pytest.approx(0.5 * (3 / 4 + 3 / 4))
    assert gap["gap_auc"] == pytest.approx(0.75)
