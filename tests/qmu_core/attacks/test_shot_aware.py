"""Shot-aware LiRA (issue 31 item 4): Gaussians from infinite-shot references, widened by the shot variance."""

from __future__ import annotations

import numpy as np
import pytest

from qmu_core.attacks.base import Observations, Reference
from qmu_core.attacks.lira import LiraOffline, LiraOnline


def _obs(s: np.ndarray) -> Observations:
    """Two-class observations whose logit-scaled confidence (LiRA's statistic under `probs`) is `s`."""
    p0 = 1 / (1 + np.exp(-s))
    return Observations("probs", np.zeros(len(s), dtype=np.int64), probs=np.stack([p0, 1 - p0], 1), correct=p0 > 0.5)


def _world(tau: float, seed: int = 0) -> tuple[Reference, Reference, np.ndarray, np.ndarray, np.ndarray]:
    """32 reference models x 400 records: per-record difficulty, a member shift, model spread 0.3, shot noise `tau`."""
    rng = np.random.default_rng(seed)
    m, r = 32, 400
    a = rng.normal(0, 1, r)
    member = rng.random((m, r)) < 0.5
    true = a + 0.5 * member + rng.normal(0, 0.3, (m, r))
    measured = true + rng.normal(0, tau, (m, r))
    population = np.zeros(r, dtype=bool)
    exact_ref = Reference(tuple(_obs(t) for t in true), member, population)
    measured_ref = Reference(tuple(_obs(t) for t in measured), member, population)
    target_member = rng.random(r) < 0.5
    target = a + 0.5 * target_member + rng.normal(0, 0.3, r) + rng.normal(0, tau, r)
    return exact_ref, measured_ref, (measured - true) ** 2, target, target_member


@pytest.mark.parametrize("cls", [LiraOffline, LiraOnline])
def test_without_shot_noise_it_is_plain_lira(cls: type[LiraOffline]) -> None:
    exact, _, _, target, _ = _world(tau=0.0)
    plain, aware = cls().fit(exact), cls().fit_shot_aware(exact, exact)
    np.testing.assert_array_equal(plain.score(_obs(target)), aware.score(_obs(target)))
    assert plain.threshold == aware.threshold


def test_each_record_is_widened_by_its_shot_variance_and_the_attack_is_calibrated() -> None:
    exact, measured, squared, target, target_member = _world(tau=1.0)
    plain, aware = LiraOffline().fit(exact), LiraOffline().fit_shot_aware(exact, measured)
    assert plain._gauss is not None and aware._gauss is not None
    np.testing.assert_allclose(aware._gauss.var_out[:, 0], plain._gauss.var_out[:, 0] + squared.mean(axis=0))
    np.testing.assert_allclose(aware._gauss.var_in[:, 0], plain._gauss.var_in[:, 0] + squared.mean(axis=0))
    # A non-member target measured with shot noise: its z-scores against the OUT Gaussians have variance
    # about 1 under the shot-aware attack; the plain attack on exact references is overconfident
    # ((0.3^2 + 1) / 0.3^2 ~ 12 times too narrow).
    out = ~target_member

    def z_var(g: object) -> float:
        return float(np.var((target[out] - g.mu_out[out, 0]) / np.sqrt(g.var_out[out, 0])))  # type: ignore[attr-defined]

    assert 0.75 < z_var(aware._gauss) < 1.35
    assert z_var(plain._gauss) > 5


def test_the_measured_references_must_be_the_exact_ones() -> None:
    exact, measured, *_ = _world(tau=1.0)
    other = Reference(measured.models, ~measured.membership, measured.population)
    with pytest.raises(ValueError, match="same reference models and records"):
        LiraOnline().fit_shot_aware(exact, other)
