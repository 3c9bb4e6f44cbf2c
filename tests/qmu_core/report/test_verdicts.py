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


def _summary(auc: float, forget: float, se: float = 0.04) -> dict:
    half = Z95 * se
    return {
        "attacks": {
            "loss": {"auc": auc, "auc_ci": [auc - half, auc + half]}
            | {"forget_auc": forget, "forget_auc_ci": [forget - half, forget + half]},
            "gap": {"auc": 0.5, "auc_ci": [0.45, 0.55], "forget_auc": 0.9, "forget_auc_ci": [0.85, 0.95]},
        }
    }


def test_leak_questions_average_the_seeds_with_the_combined_interval() -> None:
    from qmu_core.report.tables import leak_rows
    from qmu_core.unlearning.compare import combined_half_width

    models = {"before": _summary(0.66, 0.70), "oracle": _summary(0.50, 0.52)}
    repeats = {"r1/before": _summary(0.60, 0.74), "r2/before": _summary(0.63, 0.72), "r1/oracle": _summary(0.55, 0.5)}
    rows = {(r["question"], r["model"]): r for r in leak_rows(models, repeats)}
    first = rows[("members vs non-members", "before")]
    assert first["attack"] == "loss"  # the highest mean population AUC, not the highest forget AUC (gap's)
    assert first["seeds"] == 3 and first["auc"] == pytest.approx(0.63)
    half = combined_half_width(np.array([0.66, 0.60, 0.63]), np.full(3, 0.04))
    assert first["ci"] == pytest.approx([0.63 - half, 0.63 + half])
    assert rows[("forget set after unlearning", "oracle")]["seeds"] == 2  # the repeats that have it
    alone = leak_rows(models)[0]
    assert alone["seeds"] == 1 and alone["auc"] == 0.66 and alone["ci"] == models["before"]["attacks"]["loss"]["auc_ci"]


def test_a_leak_ci_is_shown_within_0_and_1_and_its_power_from_its_whole_width() -> None:
    from qmu_core.report.tables import leak_answer, leak_rows

    models = {"before": _summary(0.90, 0.95), "oracle": _summary(0.5, 0.5)}
    repeats = {"r1/before": _summary(0.80, 0.99), "r2/before": _summary(0.85, 0.80)}
    row = next(r for r in leak_rows(models, repeats) if r["question"] == "forget set vs held-out forget class")
    assert row["ci"][1] == 1.0 and row["ci"][0] > 0.5 and row["answer"] == "leaks"
    # the power line is that of the unclipped interval (clipping would shrink it)
    assert row["power"] != leak_answer(row["auc"], row["ci"])[1]
