"""ROC curves of every attack, one panel per phase, on log-log axes (PNG).

Log-log axes show the low-FPR end, where a membership attack matters: a curve that leaves the
chance diagonal only at high FPR identifies few members confidently, whatever its AUC.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from qmu_core.artifacts import atomic_path

__all__ = ["AXIS_FLOOR", "roc_plot", "trapezoid_auc"]

AXIS_FLOOR = 1e-3
"""Lowest rate shown on either axis, unless the curves hold smaller nonzero rates."""


def trapezoid_auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the curve through the points ``(fpr, tpr)``, sorted by FPR then TPR; NaN without points."""
    x = np.asarray(fpr, dtype=np.float64)
    y = np.asarray(tpr, dtype=np.float64)
    if len(x) == 0:
        return float("nan")
    order = np.lexsort((y, x))
    x, y = x[order], y[order]
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def _floor(values: pd.Series) -> float:
    """`AXIS_FLOOR`, or the smallest positive value (e.g. 1/n) when that is smaller."""
    positive = values[values > 0]
    return min(AXIS_FLOOR, float(positive.min())) if len(positive) else AXIS_FLOOR


def _auc(curve: pd.DataFrame) -> float:
    """The curve's AUC: the frame's ``auc`` column when it holds one, else the trapezoid rule."""
    if "auc" in curve.columns:
        given = curve["auc"].dropna()
        if len(given):
            return float(given.iloc[0])
    return trapezoid_auc(curve["fpr"].to_numpy(), curve["tpr"].to_numpy())


def roc_plot(roc: pd.DataFrame, path: Path, *, title: str) -> Path:
    """Write the ROC curves in `roc` as a PNG at `path` (atomically) and return `path`.

    Args:
        roc: Columns ``phase``, ``attack``, ``fpr``, ``tpr`` (one row per curve point) and
            optionally ``auc`` (per phase and attack; the legend shows it, computed by the
            trapezoid rule when absent). Phases become panels and attacks curves, both in the
            frame's order; an attack keeps its colour across panels.
        path: The PNG to write.
        title: The figure's title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    missing = {"phase", "attack", "fpr", "tpr"} - set(roc.columns)
    if missing:
        raise ValueError(f"roc frame lacks columns {sorted(missing)}")
    phases = list(pd.unique(roc["phase"]))
    attacks = list(pd.unique(roc["attack"]))
    if not phases:
        raise ValueError("roc frame has no rows")
    x_floor, y_floor = _floor(roc["fpr"]), _floor(roc["tpr"])
    colours = plt.get_cmap("tab10")
    # At most 4 panels a row: one long strip shrinks to illegible when shown at page width (the UI).
    ncols = min(4, len(phases))
    nrows = -(-len(phases) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols, 4.4 * nrows), dpi=110, squeeze=False, sharex=True, sharey=True
    )
    try:
        for ax in axes.flat[len(phases) :]:
            ax.set_visible(False)
        for ax, phase in zip(axes.flat, phases, strict=False):
            in_phase = roc[roc["phase"] == phase]
            for i, attack in enumerate(attacks):
                curve = in_phase[in_phase["attack"] == attack]
                if curve.empty:
                    continue
                curve = curve.sort_values(["fpr", "tpr"], kind="stable")
                ax.plot(
                    np.clip(curve["fpr"].to_numpy(dtype=np.float64), x_floor, 1.0),
                    np.clip(curve["tpr"].to_numpy(dtype=np.float64), y_floor, 1.0),
                    color=colours(i % 10),
                    linewidth=1.3,
                    label=f"{attack} (AUC {_auc(curve):.3f})",
                )
            low = min(x_floor, y_floor)
            ax.plot([low, 1.0], [low, 1.0], color="grey", linestyle="dashed", linewidth=0.9, label="chance")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(x_floor, 1.0)
            ax.set_ylim(y_floor, 1.05)
            ax.set_xlabel("false-positive rate")
            ax.set_title(str(phase), fontsize=10)
            ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
            ax.legend(loc="lower right", fontsize=7)
        for row in axes:
            row[0].set_ylabel("true-positive rate")
        fig.suptitle(title)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
