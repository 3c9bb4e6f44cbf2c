"""The hardware report's section "Unlearning judged on the device" (issue 31 item 3)."""

from __future__ import annotations

import pandas as pd

from qmu_core.hardware.report import deletion_markdown, deletion_rows


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
    assert "| measured | before | 0.800 [0.700, 0.900] | **leaks** | 0.300 [" in text
    assert "the oracle's row is its control" in text
