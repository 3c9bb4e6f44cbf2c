"""Accuracy by role and forget flag, and membership-attack metrics.

ROC AUC and TPR at a fixed FPR come from `sklearn.metrics`. The membership metrics compare
target members (``target_train``) with target non-members (``target_holdout``), whatever
model produced the scores, so before/after/oracle numbers are directly comparable.

`attack_metrics` and the ``*_ranks`` / ``*_fast`` functions compute the same numbers without
scikit-learn, vectorised over bootstrap resamples: every resample is reduced to per-score
counts of members and non-members (the scores' distinct values are the bins), from which the
Mann-Whitney AUC and the ROC staircase follow by cumulative sums.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = [
    "Z95",
    "accuracy_metrics",
    "attack_metrics",
    "auc_ranks",
    "balanced_accuracy",
    "bootstrap_ci",
    "gap_metrics",
    "roc_auc",
    "roc_points",
    "tpr_at_fpr",
    "tpr_at_fpr_fast",
]

Z95 = 1.959964
"""Two-sided 95% normal quantile: a CI is ``estimate ± Z95 * SE`` (compare, tables and U-LiRA read it here)."""

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
    """Percentile bootstrap interval of `statistic(y, s)`, resampling members and non-members separately.

    So every resample has both, in the original proportions.

    Returns:
        ``(low, high)``; NaNs when either class is empty.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    if statistic is roc_auc:  # same resamples, counted instead of 1000 calls to scikit-learn
        counts = _Counts(s, *_resamples(pos, neg, n_boot=n_boot, seed=seed))
        return _interval(counts.auc(), level)
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(len(pos), bool), np.zeros(len(neg), bool)]
    values = np.empty(n_boot)
    for b in range(n_boot):
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        values[b] = statistic(labels, s[idx])
    tail = (1.0 - level) / 2.0
    return float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail))


def _resamples(pos: np.ndarray, neg: np.ndarray, *, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified bootstrap indices, drawn with replacement.

    ``(n_boot, len(pos))`` draws from `pos` and ``(n_boot, len(neg))`` from `neg`.

    The draws are exactly those of `bootstrap_ci`'s loop (``rng.choice(pos, len(pos))``, then
    ``rng.choice(neg, len(neg))``, per resample), so the fast and the generic path agree.
    """
    rng = np.random.default_rng(seed)
    n_pos, n_neg = len(pos), len(neg)
    pos_idx = np.empty((n_boot, n_pos), np.int64)
    neg_idx = np.empty((n_boot, n_neg), np.int64)
    draw = rng.integers  # what Generator.choice(a, size) draws for a 1-D `a` without `p`
    for b in range(n_boot):
        pos_idx[b] = draw(0, n_pos, n_pos)
        neg_idx[b] = draw(0, n_neg, n_neg)
    return pos[pos_idx], neg[neg_idx]


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the finite `values` (resamples where a class was empty are NaN)."""
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    return float(np.quantile(finite, tail)), float(np.quantile(finite, 1.0 - tail))


class _Counts:
    """Members and non-members per distinct score, one row per resample.

    Args:
        scores: All scores; their distinct values are the bins.
        pos_idx: ``(B, n)`` indices into `scores` of each resample's members.
        neg_idx: ``(B, m)`` indices of each resample's non-members.
        keep: Count only the records where this is true (a subset such as the forget set);
            every record when None.
    """

    def __init__(self, scores: np.ndarray, pos_idx: np.ndarray, neg_idx: np.ndarray, keep: np.ndarray | None = None):
        values, bins = np.unique(scores, return_inverse=True)
        n_bins = len(values)
        if keep is not None:  # dropped records go to an extra last bin, cut off below
            bins = np.where(keep, bins, n_bins)
        self.pos = self._histogram(bins[pos_idx], n_bins)
        self.neg = self._histogram(bins[neg_idx], n_bins)
        self.n_pos = self.pos.sum(axis=1)
        self.n_neg = self.neg.sum(axis=1)
        self._descending: tuple[np.ndarray, np.ndarray] | None = None

    @staticmethod
    def _histogram(bins: np.ndarray, n_bins: int) -> np.ndarray:
        rows = bins.shape[0]
        width = n_bins + 1
        flat = (bins + width * np.arange(rows)[:, None]).ravel()
        return np.bincount(flat, minlength=rows * width).reshape(rows, width)[:, :n_bins]

    def _valid(self) -> np.ndarray:
        return (self.n_pos > 0) & (self.n_neg > 0)

    def auc(self) -> np.ndarray:
        """Mann-Whitney AUC per row: pairs a member wins, ties counted half (NaN: a class is empty)."""
        below = np.cumsum(self.neg, axis=1) - self.neg
        wins2 = (self.pos * (2 * below + self.neg)).sum(axis=1)  # twice the wins, exact integers
        pairs2 = 2 * self.n_pos * self.n_neg
        out = np.full(len(pairs2), np.nan)
        ok = self._valid()
        out[ok] = wins2[ok] / pairs2[ok]
        return out

    def tpr_at_fpr(self, fpr: float) -> np.ndarray:
        """Highest TPR whose FPR is at most `fpr` per row, over every threshold ``score >= t``.

        The thresholds are those of ``roc_curve(drop_intermediate=False)``, plus its (0, 0) point.
        """
        if self._descending is None:  # members and non-members at or above each score, highest first
            self._descending = (np.cumsum(self.pos[:, ::-1], axis=1), np.cumsum(self.neg[:, ::-1], axis=1))
        tps, fps = self._descending
        ok = self._valid()
        n_neg = np.where(ok, self.n_neg, 1)
        # the most false positives k with k / n_neg <= fpr, compared as roc_curve does (in floats)
        limit = np.floor(fpr * n_neg).astype(np.int64)
        limit += (limit + 1) / n_neg <= fpr
        limit -= limit / n_neg > fpr
        # TPR and FPR rise together down the thresholds: the best is the last point within the limit
        last = (fps <= limit[:, None]).sum(axis=1) - 1  # -1: only the (0, 0) point
        rows = np.arange(len(tps))
        hits = np.where(last >= 0, tps[rows, np.maximum(last, 0)], 0)
        out = np.full(len(tps), np.nan)
        out[ok] = hits[ok] / self.n_pos[ok]
        return out


def _identity(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The original sample as a single "resample": member indices and non-member indices."""
    return np.flatnonzero(y)[None, :], np.flatnonzero(~y)[None, :]


def auc_ranks(y_true: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by ranks (Mann-Whitney U / pairs, ties counted half); equals `roc_auc`. NaN with one class only."""
    y = np.asarray(y_true).astype(bool)
    return float(_Counts(np.asarray(scores, dtype=np.float64), *_identity(y)).auc()[0])


def tpr_at_fpr_fast(y_true: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """Highest TPR whose FPR is at most `fpr`, counted; equals `tpr_at_fpr`. NaN with one class only."""
    y = np.asarray(y_true).astype(bool)
    return float(_Counts(np.asarray(scores, dtype=np.float64), *_identity(y)).tpr_at_fpr(fpr)[0])


def balanced_accuracy(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    """Mean of TPR and TNR when ``score > threshold`` calls "member"; NaN with one class only."""
    y = np.asarray(y_true).astype(bool)
    if y.all() or not y.any():
        return float("nan")
    called = np.asarray(scores, dtype=np.float64) > threshold
    return float(0.5 * (called[y].mean() + (~called[~y]).mean()))


def _rate(called: np.ndarray, rows: np.ndarray) -> float:
    """Share of `rows` called "member"; NaN when there are none."""
    return float(called[rows].mean()) if rows.any() else float("nan")


def attack_metrics(
    score: np.ndarray,
    is_member: np.ndarray,
    is_forget: np.ndarray,
    threshold: float,
    *,
    seed: int = 0,
    n_boot: int = N_BOOTSTRAP,
    level: float = 0.95,
) -> dict[str, float | tuple[float, float]]:
    """One attack's membership metrics, with percentile bootstrap intervals.

    The arrays cover the audited records only (target members and target non-members). The
    intervals share one set of `n_boot` resamples (members and non-members resampled
    separately, seeded by `seed`; the same draws as `bootstrap_ci`, so ``auc_ci`` equals
    ``bootstrap_ci(is_member, score, seed=seed)``). ``forget_auc_ci`` counts the forget-set
    records each resample happens to hold; resamples without a member or a non-member among
    them are left out of its interval.

    Returns:
        ``auc``, ``balanced_acc`` (``score > threshold`` calls "member"), ``tpr_at_1pct_fpr``,
        ``tpr_at_0_1pct_fpr``, ``forget_auc`` (members vs non-members of the forget set), each
        with a ``*_ci`` ``(low, high)``; ``forget_success`` and ``forget_control`` (share of
        forget-set members, and of forget-set non-members, called "member"). NaN, and
        ``(nan, nan)``, where a class is empty.
    """
    s = np.asarray(score, dtype=np.float64)
    y = np.asarray(is_member).astype(bool)
    forget = np.asarray(is_forget).astype(bool)
    if not (s.shape == y.shape == forget.shape) or s.ndim != 1:
        raise ValueError(
            f"score, is_member and is_forget must be 1-D of one length: {s.shape}, {y.shape}, {forget.shape}"
        )
    called = s > threshold
    out: dict[str, float | tuple[float, float]] = {
        "forget_success": _rate(called, y & forget),
        "forget_control": _rate(called, ~y & forget),
    }
    point, point_forget = _Counts(s, *_identity(y)), _Counts(s, *_identity(y), keep=forget)
    out["auc"] = float(point.auc()[0])
    out["balanced_acc"] = balanced_accuracy(y, s, threshold)
    out["tpr_at_1pct_fpr"] = float(point.tpr_at_fpr(0.01)[0])
    out["tpr_at_0_1pct_fpr"] = float(point.tpr_at_fpr(0.001)[0])
    out["forget_auc"] = float(point_forget.auc()[0])
    nan_ci = (float("nan"), float("nan"))
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    if len(pos) == 0 or len(neg) == 0:
        for key in ("auc", "balanced_acc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr", "forget_auc"):
            out[f"{key}_ci"] = nan_ci
        return out
    pos_idx, neg_idx = _resamples(pos, neg, n_boot=n_boot, seed=seed)
    boot = _Counts(s, pos_idx, neg_idx)
    balanced = 0.5 * (called[pos_idx].mean(axis=1) + (~called[neg_idx]).mean(axis=1))
    out["auc_ci"] = _interval(boot.auc(), level)
    out["balanced_acc_ci"] = _interval(balanced, level)
    out["tpr_at_1pct_fpr_ci"] = _interval(boot.tpr_at_fpr(0.01), level)
    out["tpr_at_0_1pct_fpr_ci"] = _interval(boot.tpr_at_fpr(0.001), level)
    forget_ok = np.isfinite(out["forget_auc"])
    out["forget_auc_ci"] = _interval(_Counts(s, pos_idx, neg_idx, keep=forget).auc(), level) if forget_ok else nan_ci
    return out


def roc_points(score: np.ndarray, is_member: np.ndarray, *, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve ``(fpr, tpr)`` of members vs non-members, for plotting.

    Collinear points are dropped (`sklearn.metrics.roc_curve`'s default); a curve still longer
    than `max_points` keeps `max_points` of them, evenly spaced along it, first and last
    included. Empty arrays when a class is empty.
    """
    y = np.asarray(is_member).astype(bool)
    if y.all() or not y.any():
        return np.empty(0), np.empty(0)
    fpr, tpr, _ = roc_curve(y, np.asarray(score, dtype=np.float64))
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(np.int64))
        fpr, tpr = fpr[keep], tpr[keep]
    return np.asarray(fpr, dtype=np.float64), np.asarray(tpr, dtype=np.float64)


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
