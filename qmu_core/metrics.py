"""Accuracy by role and forget flag, and membership-attack metrics.

ROC AUC and TPR at a fixed FPR come from `sklearn.metrics`. The membership metrics compare
target members (``target_train``) with target non-members (``target_holdout``), whatever
model produced the scores, so before/after/oracle numbers are directly comparable.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = ["accuracy_metrics", "membership_metrics", "roc_auc", "tpr_at_fpr"]


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
      (non-members; what "member" calls cost when nothing was learned).
    """
    rows = scores[scores["role"].isin(["target_train", "target_holdout"])]
    y = (rows["role"] == "target_train").to_numpy()
    s = rows["score"].to_numpy()
    called = s > threshold
    forget = rows["is_forget"].to_numpy()
    return {
        "mia_auc": roc_auc(y, s),
        "mia_balanced_acc": float(0.5 * (called[y].mean() + (~called[~y]).mean())),
        "mia_tpr_at_1pct_fpr": tpr_at_fpr(y, s, 0.01),
        "mia_forget_success": float(called[y & forget].mean()) if (y & forget).any() else float("nan"),
        "mia_forget_control": float(called[~y & forget].mean()) if (~y & forget).any() else float("nan"),
    }
