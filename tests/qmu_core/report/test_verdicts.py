"""Three-valued verdicts: a CI that straddles the decision says "inconclusive", not ✓ or ✗."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from qmu_core.report.tables import Z80, Z95, leak_answer
from qmu_core.unlearning.compare import verdict


@pytest.mark.parametrize(
    ("gap", "lo", "hi", "expected"),
    [
        (0.01, -0.03, 0.04, "within"),  # the whole CI inside ±0.05
        (0.02, -0.04, 0.08, "inconclusive"),  # straddles +0.05
        (-0.2, -0.3, -0.1, "outside"),  # the whole CI beyond -0.05
        (0.1, 0.06, 0.14, "outside"),
        (0.0, -0.06, 0.06, "inconclusive"),  # wider than the tolerance on both sides
        (0.03, math.nan, math.nan, "within"),  # one repeat: the point gap decides
        (0.07, None, None, "outside"),
    ],
)
def test_a_gap_is_within_outside_or_inconclusive_by_its_ci(gap: float, lo: float, hi: float, expected: str) -> None:
    assert verdict("retain_test_acc", gap, lo, hi) == expected


def test_metrics_without_a_tolerance_and_missing_gaps_have_no_verdict() -> None:
    assert verdict("wall_s", 1.0, 0.0, 2.0) is None
    assert verdict("retain_test_acc", math.nan) is None
    assert verdict("lira_online:forget_auc", 0.2, 0.15, 0.25) == "outside"  # an attack's metric: its suffix's


def test_a_leak_is_a_ci_above_one_half_and_power_follows_the_ci_width() -> None:
    assert leak_answer(0.7, [0.6, 0.8])[0] == "**leaks**"
    assert leak_answer(0.55, [0.45, 0.65])[0] == "no leak detected"
    assert leak_answer(0.4, [0.3, 0.45])[0] == "below chance"
    assert leak_answer(None, None)[0] == "n/a"
    narrow, wide = leak_answer(0.55, [0.5, 0.6])[1], leak_answer(0.55, [0.3, 0.8])[1]
    # detectable AUC = 0.5 + (z_.975 + z_.8) * width / (2 z_.975)
    assert "detects AUC >= 0.571" in narrow and "detects AUC >= 0.857" in wide
    assert pytest.approx(stats.norm.ppf(0.975), abs=1e-6) == Z95 and pytest.approx(stats.norm.ppf(0.8), abs=1e-6) == Z80


def test_detectable_auc_has_the_power_it_claims() -> None:
    """Simulated: at the detectable AUC the one-sided test rejects 0.5 about 80% of the time."""
    rng = np.random.default_rng(0)
    se = 0.05
    detect = 0.5 + (Z95 + Z80) * se
    estimates = rng.normal(detect, se, 20000)
    power = float(np.mean(estimates - Z95 * se > 0.5))
    assert power == pytest.approx(0.8, abs=0.01)
