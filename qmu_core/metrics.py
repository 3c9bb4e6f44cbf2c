"""Accuracy by role and forget flag, and membership-attack metrics.

ROC AUC and TPR at a fixed FPR come from `sklearn.metrics`. The membership metrics compare
target members (``target_train``) with target non-members (``target_holdout``), whatever
model produced the scores, so before/after/oracle numbers are directly comparable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = ["accuracy_metrics", "bootstrap_ci", "gap_metrics", "membership_metrics", "roc_auc", "tpr_at_fpr"]

N_BOOTSTRAP = 1000
"""Bootstrap resamples behind every confidence interval."""


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (`sklearn.metrics.roc_auc_score`); NaN with one class only."""
    y = np.asarray(y_true).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, np.asarray(scores, dtype=np.float64)))


def tpr_at_fpr(y_true: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """Highest true-positive rate whose false-positive rate is at most `fpr` (`sklearn.metrics.roc_curve`)."""
    y = np.asarray(y_true).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    fprs, tprs, _ = roc_curve(y, np.asarray(scores, dtype=np.float64), drop_intermediate=False)
    return float(tprs[fprs <= fpr].max())


def bootstrap_ci(
    y_true: np.ndarray,
    scores: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float] = roc_auc,
    *,
    n_boot: int = N_BOOTSTRAP,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of `statistic(y, s)`, resampling members and non-members
    separately (so every resample has both, in the original proportions).

    Returns:
        ``(low, high)``; NaNs when either class is empty.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    values = np.empty(n_boot)
    for b in range(n_boot):
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        values[b] = statistic(labels, s[idx])
    tail = (1.0 - level) / 2.0
    return float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail))


def _members_vs_nonmembers(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows every membership metric compares, and which are target members."""
    rows = frame[frame["role"].isin(["target_train", "target_holdout"])]
    return rows, (rows["role"] == "target_train").to_numpy()


def accuracy_metrics(outputs: pd.DataFrame) -> dict[str, float]:
    """Accuracy on retain/forget records of the test set and of the target's training set."""
    out: dict[str, float] = {}
    for role, prefix in (("test", "test"), ("target_train", "train")):
        rows = outputs[outputs["role"] == role]
        for flag, name in ((False, "retain"), (True, "forget")):
            part = rows[rows["is_forget"] == flag]
            out[f"{name}_{prefix}_acc"] = float(part["correct"].mean()) if len(part) else float("nan")
    return out


def membership_metrics(scores: pd.DataFrame, *, threshold: float) -> dict[str, float]:
    """Attack metrics on target members vs non-members, and on the forget set.

    * ``mia_auc``: ROC AUC of the score, target members vs target non-members;
    * ``mia_balanced_acc``: mean of TPR and TNR at `threshold`;
    * ``mia_tpr_at_1pct_fpr``: TPR at 1 % FPR;
    * ``mia_forget_success``: fraction of forget-set training records called "member"
      (the paper's headline number);
    * ``mia_forget_control``: the same rate on held-out records of the forget class
      (non-members; what "member" calls cost when nothing was learned);
    * ``mia_auc_ci_low`` / ``_high``: bootstrap 95 % interval of ``mia_auc``;
    * ``mia_tpr_at_0_1pct_fpr``: TPR at 0.1 % FPR;
    * ``mia_forget_auc`` (and its interval): AUC separating forget-set training records from
      held-out records of the forget class: the leak specific to the forget set, 0.5 when the
      model holds nothing about it.
    """
    rows, y = _members_vs_nonmembers(scores)
    s = rows["score"].to_numpy()
    called = s > threshold
    forget = rows["is_forget"].to_numpy()
    auc_low, auc_high = bootstrap_ci(y, s)
    forget_low, forget_high = bootstrap_ci(y[forget], s[forget])
    return {
        "mia_auc": roc_auc(y, s),
        "mia_auc_ci_low": auc_low,
        "mia_auc_ci_high": auc_high,
        "mia_tpr_at_0_1pct_fpr": tpr_at_fpr(y, s, 0.001),
        "mia_forget_auc": roc_auc(y[forget], s[forget]),
        "mia_forget_auc_ci_low": forget_low,
        "mia_forget_auc_ci_high": forget_high,
        "mia_balanced_acc": float(0.5 * (called[y].mean() + (~called[~y]).mean())),
        "mia_tpr_at_1pct_fpr": tpr_at_fpr(y, s, 0.01),
        "mia_forget_success": float(called[y & forget].mean()) if (y & forget).any() else float("nan"),
        "mia_forget_control": float(called[~y & forget].mean()) if (~y & forget).any() else float("nan"),
    }


def gap_metrics(outputs: pd.DataFrame) -> dict[str, float]:
    """The baseline every attack must beat: "member" if the model classifies the record correctly.

    On target members (``target_train``) vs non-members (``target_holdout``): ``gap_balanced_acc``
    (mean of TPR and TNR of that rule) and ``gap_auc`` (the correct flag as a score).
    """
    rows, y = _members_vs_nonmembers(outputs)
    called = rows["correct"].to_numpy().astype(bool)
    if y.all() or not y.any():
        return {"gap_balanced_acc": float("nan"), "gap_auc": float("nan")}
    return {
        "gap_balanced_acc": float(0.5 * (called[y].mean() + (~called[~y]).mean())),
        "gap_auc": roc_auc(y, called.astype(np.float64)),
    }
