"""The hardware report's section "Unlearning judged on the device" (issue 31 item 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qmu_core.hardware.report import deletion_markdown, deletion_rows
from qmu_core.unlearning.compare import Z95, combined_half_width


def _metrics(source: str, aucs: dict[str, tuple[float, float, float]], success: float = 0.4) -> pd.DataFrame:
    rows = []
    for phase, (auc, lo, hi) in aucs.items():
        for metric, value in (
            ("forget_auc", auc),
            ("forget_auc_ci_low", lo),
            ("forget_auc_ci_high", hi),
            ("forget_success", success),
        ):
            rows.append({"source": source, "model_id": phase, "phase": phase, "attack": "lira_online",
                         "metric": metric, "value": value})  # fmt: skip
    return pd.DataFrame(rows)


def test_each_model_is_judged_against_the_oracle_of_its_own_source() -> None:
    measured = _metrics(
        "measured",
        {
            "before": (0.80, 0.70, 0.90),  # leaks, far from the oracle
            "after_ga": (0.50, 0.49, 0.51),  # as the oracle, tightly
            "after_ssd": (0.55, 0.40, 0.70),  # the CI straddles the tolerance
            "oracle": (0.50, 0.49, 0.51),
        },
    )
    no_oracle = _metrics("other", {"before": (0.8, 0.7, 0.9)})
    rows = {
        (r["source"], r["phase"]): r for r in deletion_rows({"measured": measured, "other": no_oracle}, ["lira_online"])
    }
    assert set(rows) == {("measured", p) for p in ("before", "after_ga", "after_ssd", "oracle")}
    before = rows[("measured", "before")]
    assert before["lira_online:leak"] == "**leaks**" and before["lira_online:verdict"] == "outside"
    assert before["lira_online:gap"] == 0.3 and before["lira_online:gap_ci"][0] > 0.05
    assert rows[("measured", "after_ga")]["lira_online:verdict"] == "within"
    assert rows[("measured", "after_ga")]["lira_online:leak"] == "no leak detected"
    assert rows[("measured", "after_ssd")]["lira_online:verdict"] == "inconclusive"
    assert rows[("measured", "oracle")]["lira_online:verdict"] is None
    text = deletion_markdown(list(rows.values()), ["lira_online"], "paper")
    assert "| measured | before | 1 | 0.800 [0.700, 0.900] | **leaks** | 0.300 [" in text
    assert "repeat 0 only" in text
    assert "the oracle's row is its control" in text


def test_seeds_are_combined_each_against_its_own_oracle() -> None:
    """Three repeats: the mean over seeds, the CI over seeds and records, and per-seed gaps to that seed's oracle."""
    half = 0.05  # every record-level CI is +-0.05, so se = 0.05 / Z95
    aucs = {"before": [0.70, 0.80, 0.75], "oracle": [0.50, 0.60, 0.55], "after_ga": [0.52, 0.61, 0.58]}
    phases = {}
    for name, values in aucs.items():
        for repeat, v in enumerate(values):
            phases[f"r{repeat}/{name}" if repeat else name] = (v, v - half, v + half)
    rows = {r["phase"]: r for r in deletion_rows({"measured": _metrics("measured", phases)}, ["lira_online"])}
    assert set(rows) == {"before", "oracle", "after_ga"}
    assert all(r["seeds"] == 3 for r in rows.values())
    se = np.full(3, half / Z95)
    before = rows["before"]
    want = combined_half_width(np.array(aucs["before"]), se)
    assert before["lira_online:forget_auc"] == pytest.approx(0.75, abs=1e-4)
    assert before["lira_online:forget_auc_ci"] == pytest.approx([0.75 - want, 0.75 + want], abs=1e-4)
    # the gaps are per seed (0.20, 0.20, 0.20): no spread over seeds, so only the records' error is left
    assert before["lira_online:gap"] == pytest.approx(0.20, abs=1e-4)
    gap_half = combined_half_width(np.full(3, 0.2), np.hypot(se, se))
    assert before["lira_online:gap_ci"] == pytest.approx([0.2 - gap_half, 0.2 + gap_half], abs=1e-4)
    assert before["lira_online:verdict"] == "outside"
    # GA's gaps (0.02, 0.01, 0.03) against its own seed's oracle; against repeat 0's oracle they would be 0.08 apart
    assert rows["after_ga"]["lira_online:gap"] == pytest.approx(0.02, abs=1e-4)
    text = deletion_markdown(list(rows.values()), ["lira_online"], "shadow")
    assert "mean over 3 training seeds" in text and "| measured | before | 3 | 0.750 [" in text


def test_one_seed_keeps_the_record_bootstrap_ci() -> None:
    rows = deletion_rows({"m": _metrics("m", {"before": (0.6, 0.5, 0.7), "oracle": (0.5, 0.4, 0.6)})}, ["lira_online"])
    before = next(r for r in rows if r["phase"] == "before")
    assert before["lira_online:forget_auc_ci"] == pytest.approx([0.5, 0.7])
    assert before["lira_online:gap_ci"] == pytest.approx([0.1 - np.hypot(0.1, 0.1), 0.1 + np.hypot(0.1, 0.1)], abs=1e-4)
