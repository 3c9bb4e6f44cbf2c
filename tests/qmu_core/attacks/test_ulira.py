"""U-LiRA (`qmu_core.attacks.ulira`) on synthetic statistics whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from qmu_core.attacks import ulira

R, M = 80, 16  # forget records, reference models per side
SD = 0.6  # spread of one model's statistic around a record's mean


def _world(seed: int) -> tuple[np.random.Generator, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng, rng.normal(0.0, 2.0, R)  # per-record difficulty: what LiRA's per-record means are for


def _models(rng: np.random.Generator, center: np.ndarray, n: int) -> np.ndarray:
    return (center[None, :] + rng.normal(0.0, SD, (n, R)))[:, :, None]


def _fitted(rng: np.random.Generator, difficulty: np.ndarray, unlearned_shift: float) -> tuple[ulira.ULira, np.ndarray]:
    """The Gaussians and the null (leave-one-out scores of the retrained reference models)."""
    seen = rng.random((M, R)) < 0.5  # each reference model trained on (then unlearned) about half the records
    args = (_models(rng, difficulty + unlearned_shift, M), seen, _models(rng, difficulty, M), np.ones((M, R), bool))
    return ulira.fit(*args), ulira.null_scores(*args)


def test_a_model_unlearned_as_well_as_retraining_scores_one_half_within_its_ci() -> None:
    """Unlearned = retrained: the audited model is one more draw of what the null's models are.

    Over 20 synthetic worlds the AUC centres on 0.5 and its CI covers 0.5 about as often as a 95%
    interval should (measured: mean 0.488, coverage 0.925 over 40 worlds; the leave-one-out fits
    see one retrained model fewer than the audited model's fit, a bias of order 1/M).
    """
    values, covered = [], []
    for world in range(20):
        rng, difficulty = _world(100 + world)
        fit, null = _fitted(rng, difficulty, unlearned_shift=0.0)
        audited = _models(rng, difficulty, 1)[0]
        value, lo, hi = ulira.auc(fit.score(audited), null, seed=0)
        values.append(value)
        covered.append(lo <= 0.5 <= hi)
        assert hi - lo < 0.3  # 80 records: an interval that could have excluded 0.5
    assert abs(np.mean(values) - 0.5) < 0.03
    assert np.mean(covered) >= 0.85


def test_a_model_that_unlearned_nothing_scores_near_one() -> None:
    """No-op: the audited model still carries every record's trace; the retrained models never had it."""
    rng, difficulty = _world(2)
    fit, null = _fitted(rng, difficulty, unlearned_shift=3.0)
    audited = _models(rng, difficulty + 3.0, 1)[0]
    value, lo, _ = ulira.auc(fit.score(audited), null, seed=0)
    assert value > 0.95 and lo > 0.9


def test_partial_unlearning_sits_between_and_per_record_means_beat_a_global_threshold() -> None:
    """A half-way shift is detected, but less surely than none; per-record means are what make it visible."""
    rng, difficulty = _world(3)
    fit, null = _fitted(rng, difficulty, unlearned_shift=1.0)
    audited = _models(rng, difficulty + 1.0, 1)[0]
    control = _models(rng, difficulty, 1)[0]
    value, _, _ = ulira.auc(fit.score(audited), null, seed=0)
    raw, _, _ = ulira.auc(audited[:, 0], control[:, 0], seed=0)  # the statistic itself, one threshold for all
    assert 0.6 < value < 0.99
    assert value > raw + 0.1


def test_a_record_without_unlearned_observations_takes_the_retrained_mean_plus_the_mean_shift() -> None:
    rng, difficulty = _world(4)
    seen = rng.random((M, R)) < 0.5
    seen[:, 0] = False  # no reference model trained on record 0
    unlearned, retrained = _models(rng, difficulty + 2.0, M), _models(rng, difficulty, M)
    fit = ulira.fit(unlearned, seen, retrained, np.ones((M, R), bool))
    shift = np.mean(fit.mean_unlearned[1:, 0] - fit.mean_retrained[1:, 0])
    assert fit.n_unlearned[0] == 0
    assert fit.mean_unlearned[0, 0] == pytest.approx(fit.mean_retrained[0, 0] + shift)
    assert shift == pytest.approx(2.0, abs=0.3)


def test_the_fit_refuses_a_side_without_observations_and_statistics_of_another_shape() -> None:
    rng, difficulty = _world(5)
    stats = _models(rng, difficulty, M)
    with pytest.raises(ValueError, match="no unlearned reference model"):
        ulira.fit(stats, np.zeros((M, R), bool), stats, np.ones((M, R), bool))
    fit = ulira.fit(stats, np.ones((M, R), bool), stats, np.ones((M, R), bool))
    with pytest.raises(ValueError, match="fitted on"):
        fit.score(np.zeros((R - 1, 1)))


def test_the_null_is_each_retrained_model_scored_without_itself_and_a_model_offset_stays_near_one_half() -> None:
    """Leave one out: a retrained model's own observation never enters the Gaussians that score it.

    A retrained model whose every record is shifted (a model-level offset, as seeds give) is one
    draw among the null's, so it lands inside the null's spread rather than at 0 or 1.
    """
    rng, difficulty = _world(6)
    offsets = rng.normal(0.0, 0.8, M)  # each retrained model's own offset, shared by all its records
    retrained = (difficulty[None, :] + offsets[:, None] + rng.normal(0.0, SD, (M, R)))[:, :, None]
    unlearned = _models(rng, difficulty + 1.5, M)
    seen, every = rng.random((M, R)) < 0.5, np.ones((M, R), bool)
    null = ulira.null_scores(unlearned, seen, retrained, every)
    others = every.copy()
    others[3] = False
    assert null[3] == pytest.approx(ulira.fit(unlearned, seen, retrained, others).score(retrained[3]))
    audited = difficulty + rng.normal(0.0, 0.8) + rng.normal(0.0, SD, R)  # a fresh retrained model
    value, lo, hi = ulira.auc(ulira.fit(unlearned, seen, retrained, every).score(audited[:, None]), null, seed=0)
    assert lo <= 0.5 <= hi


def test_the_interval_counts_the_audited_models_own_draw_through_the_null_spread() -> None:
    """Retrained models with their own offsets: the records' bootstrap alone misses 0.5 for most of them.

    The audited model is one more retrained model; each world draws a fresh one. With the null
    spread (each null model's AUC against the others) in the interval, 0.5 is covered about as
    often as a 95% interval should; with the bootstrap alone, far less often.
    """
    with_spread, without = [], []
    for world in range(30):
        rng, difficulty = _world(200 + world)
        offsets = rng.normal(0.0, 0.8, M + 1)  # each retrained model's own offset, shared by its records
        retrained = (difficulty[None, :] + offsets[:M, None] + rng.normal(0.0, SD, (M, R)))[:, :, None]
        args = (_models(rng, difficulty + 1.5, M), rng.random((M, R)) < 0.5, retrained, np.ones((M, R), bool))
        null = ulira.null_scores(*args)
        spread = ulira.null_spread(null)
        audited = ulira.fit(*args).score((difficulty + offsets[M] + rng.normal(0.0, SD, R))[:, None])
        _, lo, hi = ulira.auc(audited, null, seed=0, spread=spread)
        with_spread.append(lo <= 0.5 <= hi)
        _, lo, hi = ulira.auc(audited, null, seed=0)
        without.append(lo <= 0.5 <= hi)
    assert np.mean(with_spread) >= 0.85
    assert np.mean(without) < 0.6
