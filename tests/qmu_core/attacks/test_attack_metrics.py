"""The counted (scikit-learn-free) attack metrics, their shared bootstrap, and the ROC plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score, roc_curve

from qmu_core import metrics
from qmu_core.rocplot import roc_plot, trapezoid_auc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CI_KEYS = ("auc", "balanced_acc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr", "forget_auc")


def _sk_tpr(y: np.ndarray, s: np.ndarray, fpr: float) -> float:
    fprs, tprs, _ = roc_curve(y, s, drop_intermediate=False)
    return float(tprs[fprs <= fpr].max())


def _case(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Members and scores: continuous, integer (many ties), two values only, unbalanced, a perfect split."""
    rng = np.random.default_rng(seed)
    if kind == "normal":
        y = np.r_[np.ones(400, bool), np.zeros(350, bool)]
        s = np.r_[rng.normal(0.4, 1, 400), rng.normal(0, 1, 350)]
    elif kind == "integers":
        y = rng.random(600) < 0.5
        s = rng.integers(0, 12, 600) + y * rng.integers(0, 3, 600)
    elif kind == "two_values":
        y = rng.random(300) < 0.4
        s = np.where(rng.random(300) < 0.3 + 0.3 * y, 1.0, 0.0)
    elif kind == "unbalanced":
        y = rng.random(2500) < 0.05
        s = np.round(rng.normal(0, 1, 2500) + 0.8 * y, 2)  # ties from rounding
    elif kind == "separated":
        y = np.r_[np.ones(50, bool), np.zeros(1200, bool)]
        s = np.r_[rng.uniform(2, 3, 50), rng.uniform(0, 1, 1200)]
    else:
        raise AssertionError(kind)
    return y, np.asarray(s, dtype=np.float64)


KINDS = ["normal", "integers", "two_values", "unbalanced", "separated"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_point_metrics_match_scikit_learn(kind: str, seed: int) -> None:
    y, s = _case(kind, seed)
    assert metrics.auc_ranks(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert metrics.auc_ranks(y, s) == pytest.approx(metrics.roc_auc(y, s), abs=1e-12)
    for fpr in (0.0, 0.001, 0.01, 0.05, 0.1, 1 / 3, 0.5, 1.0):
        assert metrics.tpr_at_fpr_fast(y, s, fpr) == _sk_tpr(y, s, fpr), fpr
    for threshold in (*np.quantile(s, [0.1, 0.5, 0.9]), float(np.median(np.unique(s))), s.min() - 1, s.max()):
        expected = balanced_accuracy_score(y, s > threshold)
        assert metrics.balanced_accuracy(y, s, threshold) == pytest.approx(expected, abs=1e-12), threshold


def test_tpr_at_fpr_counts_ties_as_one_threshold() -> None:
    # a member and a non-member tied at the top: FPR 0 admits nothing above the tie
    y = np.array([1, 0, 1, 0, 0, 0])
    s = np.array([5.0, 5.0, 3.0, 2.0, 1.0, 0.0])
    assert metrics.tpr_at_fpr_fast(y, s, 0.0) == 0.0 == _sk_tpr(y, s, 0.0)
    assert metrics.tpr_at_fpr_fast(y, s, 0.25) == 1.0 == _sk_tpr(y, s, 0.25)
    assert metrics.auc_ranks(y, s) == pytest.approx((3.5 + 3) / 8)


def test_attack_metrics_points_match_scikit_learn() -> None:
    y, s = _case("integers", 3)
    forget = np.random.default_rng(9).random(len(y)) < 0.2
    threshold = 6.0  # an integer score: "called" is strictly greater
    m = metrics.attack_metrics(s, y, forget, threshold, n_boot=50)
    assert m["auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert m["balanced_acc"] == pytest.approx(balanced_accuracy_score(y, s > threshold), abs=1e-12)
    assert m["tpr_at_1pct_fpr"] == _sk_tpr(y, s, 0.01)
    assert m["tpr_at_0_1pct_fpr"] == _sk_tpr(y, s, 0.001)
    assert m["forget_auc"] == pytest.approx(roc_auc_score(y[forget], s[forget]), abs=1e-12)
    assert m["forget_success"] == pytest.approx(np.mean(s[y & forget] > threshold))
    assert m["forget_control"] == pytest.approx(np.mean(s[~y & forget] > threshold))
    assert set(m) == {*CI_KEYS, *(f"{k}_ci" for k in CI_KEYS), "forget_success", "forget_control"}
    for key in CI_KEYS:
        low, high = m[f"{key}_ci"]  # type: ignore[misc]
        assert low <= high


def test_forget_success_and_control_by_hand() -> None:
    # members: forget 0.9, 0.6, 0.2 (two above 0.5), retain 0.8; non-members: forget 0.7, 0.1, 0.3, 0.4, retain 0.95
    score = np.array([0.9, 0.6, 0.2, 0.8, 0.7, 0.1, 0.3, 0.4, 0.95])
    member = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    forget = np.array([1, 1, 1, 0, 1, 1, 1, 1, 0], bool)
    m = metrics.attack_metrics(score, member, forget, 0.5, n_boot=20)
    assert m["forget_success"] == pytest.approx(2 / 3)
    assert m["forget_control"] == pytest.approx(1 / 4)
    # forget members 0.9, 0.6, 0.2 vs forget non-members 0.7, 0.1, 0.3, 0.4: 4 + 3 + 1 pairs of 12
    assert m["forget_auc"] == pytest.approx(8 / 12)
    # all: 0.9 beats 4 of 5, 0.6 beats 3, 0.2 beats 1, 0.8 beats 4: 12 of 20
    assert m["auc"] == pytest.approx(12 / 20)
    assert m["balanced_acc"] == pytest.approx(0.5 * (3 / 4 + 3 / 5))


def _naive_intervals(
    s: np.ndarray, y: np.ndarray, forget: np.ndarray, threshold: float, *, seed: int, n_boot: int, level: float
) -> tuple[dict[str, tuple[float, float]], int]:
    """`bootstrap_ci`'s resampling loop, scored with scikit-learn, every metric on the same resamples.

    Also how many resamples had no forget-set member or non-member.
    """
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    values: dict[str, list[float]] = {k: [] for k in CI_KEYS}
    for _ in range(n_boot):
        idx = np.r_[rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]
        yb, sb, fb = y[idx], s[idx], forget[idx]
        values["auc"].append(roc_auc_score(yb, sb))
        values["balanced_acc"].append(balanced_accuracy_score(yb, sb > threshold))
        values["tpr_at_1pct_fpr"].append(_sk_tpr(yb, sb, 0.01))
        values["tpr_at_0_1pct_fpr"].append(_sk_tpr(yb, sb, 0.001))
        if yb[fb].any() and not yb[fb].all():
            values["forget_auc"].append(roc_auc_score(yb[fb], sb[fb]))
    tail = (1 - level) / 2
    intervals = {k: (float(np.quantile(v, tail)), float(np.quantile(v, 1 - tail))) for k, v in values.items()}
    return intervals, n_boot - len(values["forget_auc"])


@pytest.mark.parametrize("kind", ["normal", "integers"])
def test_intervals_equal_a_resampling_loop_scored_by_scikit_learn(kind: str) -> None:
    y, s = _case(kind, 5)
    forget = np.zeros(len(y), bool)
    forget[np.r_[np.flatnonzero(y)[:2], np.flatnonzero(~y)[:2]]] = True  # so small some resamples lack a member
    threshold = float(np.median(s))
    m = metrics.attack_metrics(s, y, forget, threshold, seed=11, n_boot=120, level=0.9)
    expected, skipped = _naive_intervals(s, y, forget, threshold, seed=11, n_boot=120, level=0.9)
    assert 0 < skipped < 60
    for key in CI_KEYS:
        assert m[f"{key}_ci"] == pytest.approx(expected[key], abs=1e-12), key


def test_bootstrap_ci_fast_path_equals_the_generic_one() -> None:
    y, s = _case("integers", 2)
    fast = metrics.bootstrap_ci(y, s, n_boot=150, seed=4)
    generic = metrics.bootstrap_ci(y, s, lambda a, b: metrics.roc_auc(a, b), n_boot=150, seed=4)
    assert fast == pytest.approx(generic, abs=1e-12)
    forget = np.zeros(len(y), bool)
    assert metrics.attack_metrics(s, y, forget, 0.0, n_boot=150, seed=4)["auc_ci"] == pytest.approx(fast, abs=1e-12)


def test_auc_interval_covers_the_true_auc() -> None:
    from scipy.stats import norm

    shift, n = 0.5, 150
    true_auc = float(norm.cdf(shift / np.sqrt(2)))  # members ~ N(0.5, 1), non-members ~ N(0, 1)
    y = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    forget = np.zeros(2 * n, bool)
    rng = np.random.default_rng(123)
    hits, widths = 0, []
    reps = 50
    for rep in range(reps):
        s = np.r_[rng.normal(shift, 1, n), rng.normal(0, 1, n)]
        low, high = metrics.attack_metrics(s, y, forget, 0.0, seed=rep, n_boot=300)["auc_ci"]  # type: ignore[misc]
        hits += low <= true_auc <= high
        widths.append(high - low)
    assert hits / reps >= 0.85
    assert 0.05 < float(np.mean(widths)) < 0.2  # about 2 * 1.96 * 0.033 for 150 + 150 records


def test_one_class_gives_nan() -> None:
    s = np.array([0.1, 0.7, 0.4, 0.9])
    forget = np.array([True, True, False, False])
    m = metrics.attack_metrics(s, np.ones(4, bool), forget, 0.5, n_boot=30)
    for key in CI_KEYS:
        assert math.isnan(m[key]), key  # type: ignore[arg-type]
        assert all(math.isnan(v) for v in m[f"{key}_ci"]), key  # type: ignore[union-attr]
    assert m["forget_success"] == 0.5  # members of the forget set are there: 0.7 of 0.1, 0.7
    assert math.isnan(m["forget_control"])  # type: ignore[arg-type]
    assert math.isnan(metrics.auc_ranks(np.zeros(4), s))
    assert math.isnan(metrics.tpr_at_fpr_fast(np.ones(4), s, 0.01))
    assert math.isnan(metrics.balanced_accuracy(np.zeros(4), s, 0.5))


def test_forget_set_with_one_class_gives_nan_only_there() -> None:
    y, s = _case("normal", 0)
    forget = np.zeros(len(y), bool)
    forget[:10] = True  # members only
    m = metrics.attack_metrics(s, y, forget, 0.0, n_boot=30)
    assert math.isnan(m["forget_auc"])  # type: ignore[arg-type]
    assert all(math.isnan(v) for v in m["forget_auc_ci"])  # type: ignore[union-attr]
    assert math.isnan(m["forget_control"])  # type: ignore[arg-type]
    assert not math.isnan(m["forget_success"])  # type: ignore[arg-type]
    assert all(np.isfinite(m[f"{k}_ci"]).all() for k in CI_KEYS if k != "forget_auc")


def test_attack_metrics_rejects_misshapen_input() -> None:
    with pytest.raises(ValueError, match="1-D of one length"):
        metrics.attack_metrics(np.zeros(4), np.ones(3, bool), np.zeros(4, bool), 0.5)


def test_roc_points_follow_roc_curve() -> None:
    y, s = _case("normal", 1)
    fpr, tpr = metrics.roc_points(s, y)
    assert (fpr[0], tpr[0]) == (0.0, 0.0)
    assert (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all()
    assert trapezoid_auc(fpr, tpr) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    thin_fpr, thin_tpr = metrics.roc_points(s, y, max_points=50)
    assert len(thin_fpr) == 50 and (thin_fpr[0], thin_tpr[-1]) == (0.0, 1.0)
    assert trapezoid_auc(thin_fpr, thin_tpr) == pytest.approx(roc_auc_score(y, s), abs=0.02)
    empty = metrics.roc_points(s, np.zeros(len(s), bool))
    assert len(empty[0]) == len(empty[1]) == 0


def _roc_frame(with_auc: bool) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    rows = []
    for phase, strength in (("before", 1.0), ("after_gradient_ascent", 0.2)):
        for attack, factor in (("loss", 1.0), ("shadow", 0.7), ("lira", 1.5)):
            s = rng.normal(0, 1, 600) + strength * factor * y
            fpr, tpr = metrics.roc_points(s, y)
            frame = pd.DataFrame({"phase": phase, "attack": attack, "fpr": fpr, "tpr": tpr})
            if with_auc:
                frame["auc"] = metrics.auc_ranks(y, s)
            rows.append(frame)
    return pd.concat(rows, ignore_index=True)


@pytest.mark.parametrize("with_auc", [True, False])
def test_roc_plot_writes_a_png(tmp_path: Path, with_auc: bool) -> None:
    path = tmp_path / "plots" / "roc.png"
    assert roc_plot(_roc_frame(with_auc), path, title="ROC, 2 phases x 3 attacks") == path
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 20_000  # two panels of curves, not an empty canvas
    assert [p.name for p in path.parent.iterdir()] == ["roc.png"]  # no temporary file left


def test_roc_plot_rejects_a_frame_without_curves(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        roc_plot(pd.DataFrame({"phase": ["before"], "fpr": [0.0]}), tmp_path / "x.png", title="x")
    assert not (tmp_path / "x.png").exists()


def test_roc_plot_wraps_after_four_panels(tmp_path: Path) -> None:
    """Seven phases (a run's before, oracle and five methods): two rows of four panels.

    Not one strip that the Prefect UI would shrink to illegible at page width.
    """
    from PIL import Image

    frame = _roc_frame(True)
    seven = pd.concat([frame.assign(phase=f"{p}-{i}") for i in range(4) for p in frame["phase"].unique()[:2]])
    seven = seven[seven["phase"].isin(sorted(seven["phase"].unique())[:7])]
    path = roc_plot(seven, tmp_path / "roc.png", title="ROC, 7 phases")
    width, height = Image.open(path).size
    assert (width, height) == (round(4.2 * 4 * 110), round(4.4 * 2 * 110))
