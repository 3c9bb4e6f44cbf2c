"""Seeds and records combined into one interval (`compare.combined_half_width`, docs/methods.md)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from qmu_core.unlearning.compare import aggregate, combined_half_width


def test_the_half_width_adds_the_seeds_spread_and_the_records_error_as_documented() -> None:
    v, se = np.array([0.6, 0.7, 0.8]), np.array([0.05, 0.04, 0.06])
    a, b = v.var(ddof=1) / 3, np.mean(se**2)
    dof = (a + b) ** 2 * 2 / a**2  # Welch-Satterthwaite: only the seeds' part is estimated from k values
    assert 2 < dof < 10
    expected = stats.t.ppf(0.975, dof) * math.sqrt(a + b)
    assert combined_half_width(v, se) == pytest.approx(expected)
    assert stats.t.ppf(0.975, dof) < stats.t.ppf(0.975, 2)  # narrower than t(k-1) on the whole
    # the records' error dominating: the interval tends to the normal one
    tiny_spread = np.array([0.700, 0.701, 0.702])
    assert combined_half_width(tiny_spread, np.full(3, 0.05)) == pytest.approx(
        1.959964 * math.sqrt(tiny_spread.var(ddof=1) / 3 + 0.05**2), rel=1e-3
    )
    assert combined_half_width(np.full(3, 0.7), np.full(3, 0.05)) == pytest.approx(1.959964 * 0.05)
    seeds_only = stats.t.ppf(0.975, 2) * v.std(ddof=1) / math.sqrt(3)
    assert combined_half_width(v, np.full(3, np.nan)) == pytest.approx(seeds_only)  # accuracies: no record error
    assert combined_half_width(np.array([0.7]), np.array([0.05])) == pytest.approx(1.959964 * 0.05)  # one seed
    assert math.isnan(combined_half_width(np.array([0.7]), np.array([np.nan])))


def test_the_combined_interval_covers_where_the_seeds_alone_do_not() -> None:
    """Simulated: the records are shared by every seed, so their error does not average out over seeds."""
    rng = np.random.default_rng(0)
    truth, sd_seed, sd_records, k, trials = 0.7, 0.02, 0.05, 3, 4000
    hits_combined = hits_seeds = 0
    for _ in range(trials):
        shared = rng.normal(0, sd_records)  # one draw of the records, the same in every repeat
        v = truth + shared + rng.normal(0, sd_seed, k)
        se = np.full(k, sd_records)  # what the bootstrap reports per repeat
        h = combined_half_width(v, se)
        hits_combined += abs(v.mean() - truth) <= h
        hits_seeds += abs(v.mean() - truth) <= combined_half_width(v, np.full(k, np.nan))
    assert hits_combined / trials >= 0.94
    assert hits_seeds / trials < 0.75  # the Student-t interval over seeds alone misses the records' error


def _table(value_se: float) -> pd.DataFrame:
    rows = []
    for repeat, (m, o) in enumerate([(0.62, 0.55), (0.66, 0.52), (0.60, 0.57)]):
        for method, value in (("ga", m), ("retrain", o)):
            rows.append(
                {"repeat": repeat, "method": method, "metric": "mia_forget_auc", "value": value, "oracle": o}
                | {"gap": value - o, "value_se": value_se, "oracle_se": value_se}
            )
    return pd.DataFrame(rows)


def test_gap_intervals_take_both_errors_and_the_oracles_own_gap_is_exactly_zero() -> None:
    agg = aggregate(_table(0.05)).set_index("method")
    gaps = np.array([0.07, 0.14, 0.03])
    a, b = gaps.var(ddof=1) / 3, 2 * 0.05**2
    expected = stats.t.ppf(0.975, (a + b) ** 2 * 2 / a**2) * math.sqrt(a + b)
    assert agg.loc["ga", "gap_ci_high"] - agg.loc["ga", "gap"] == pytest.approx(expected)
    assert agg.loc["retrain", "gap_ci_low"] == agg.loc["retrain", "gap_ci_high"] == 0.0
    old = aggregate(_table(0.05).drop(columns=["value_se", "oracle_se"])).set_index("method")  # a v1 artifact
    assert old.loc["ga", "gap_ci_high"] - old.loc["ga", "gap"] == pytest.approx(
        stats.t.ppf(0.975, 2) * gaps.std(ddof=1) / math.sqrt(3)
    )
