"""Before / after / oracle comparison: metrics table, summary, Markdown and a plot."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from qmu_core import metrics

__all__ = ["HEADLINE", "compare", "markdown", "models_summary", "plot", "write_summary"]

# The stable numbers scripts read from summary.json["models"][phase].
HEADLINE = ("retain_test_acc", "forget_test_acc", "mia_auc", "mia_forget_success")
# The plot adds the non-member control next to the forget success: leakage is their gap.
PLOTTED = (*HEADLINE, "mia_forget_control")

LABELS = {
    "retain_test_acc": "retain test acc",
    "forget_test_acc": "forget test acc",
    "retain_train_acc": "retain train acc",
    "forget_train_acc": "forget train acc",
    "mia_auc": "MIA AUC",
    "mia_balanced_acc": "MIA balanced acc",
    "mia_tpr_at_1pct_fpr": "MIA TPR @ 1% FPR",
    "mia_forget_success": "MIA forget success",
    "mia_forget_control": "MIA forget control (non-members)",
}


def compare(
    outputs: Mapping[str, pd.DataFrame], scores: Mapping[str, pd.DataFrame], *, threshold: float
) -> pd.DataFrame:
    """Long metrics table (the `metrics` artifact): one row per (phase, metric)."""
    rows = []
    for phase, out in outputs.items():
        values = metrics.accuracy_metrics(out) | metrics.membership_metrics(scores[phase], threshold=threshold)
        model_id = str(out["model_id"].iloc[0])
        rows += [{"model_id": model_id, "phase": phase, "metric": k, "value": float(v)} for k, v in values.items()]
    return pd.DataFrame(rows)


def models_summary(table: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """``{phase: {metric: value}}`` with NaN as None (valid JSON)."""
    out: dict[str, dict[str, float | None]] = {}
    for r in table.itertuples():
        value = None if math.isnan(r.value) else float(r.value)
        out.setdefault(str(r.phase), {})[str(r.metric)] = value
    return out


def markdown(summary: Mapping[str, Mapping[str, float | None]], *, title: str, notes: list[str]) -> str:
    """A Markdown report: the comparison table and what it means."""
    phases = list(summary)
    lines = [f"# {title}", "", "| metric | " + " | ".join(phases) + " |", "|---|" + "---:|" * len(phases)]
    for key, label in LABELS.items():
        cells = [summary[p].get(key) for p in phases]
        lines.append(f"| {label} | " + " | ".join("n/a" if c is None else f"{c:.3f}" for c in cells) + " |")
    lines += ["", *notes]
    return "\n".join(lines) + "\n"


def plot(summary: Mapping[str, Mapping[str, float | None]], path: Path, *, title: str) -> Path:
    """Grouped bar chart of the headline numbers per phase (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = list(summary)
    fig, ax = plt.subplots(figsize=(9.5, 4.4), dpi=110)
    width = 0.8 / len(phases)
    for i, phase in enumerate(phases):
        vals = [summary[phase].get(k) or 0.0 for k in PLOTTED]
        bars = ax.bar([j + i * width for j in range(len(PLOTTED))], vals, width, label=phase)
        ax.bar_label(bars, fmt="%.2f", fontsize=7)
    auc = PLOTTED.index("mia_auc")
    ax.hlines(0.5, auc - width, auc + width * len(phases), colors="grey", linestyles="dashed", label="chance (AUC)")
    ax.set_xticks([j + width * (len(phases) - 1) / 2 for j in range(len(PLOTTED))])
    ax.set_xticklabels([LABELS[k].replace(" (non-members)", "\n(non-members)") for k in PLOTTED], fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("fraction")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_summary(path: Path, summary: Mapping[str, Any]) -> Path:
    """Write `summary` as JSON atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
    return path
