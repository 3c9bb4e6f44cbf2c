"""The score-based attacks (gap, loss, LiRA, RMIA) on synthetic reference and target models.

The synthetic case has per-record difficulty: record ``r``'s statistic is ``d_r + shift * member +
noise`` with ``d_r ~ N(0, 2)``, so a global threshold on the loss mostly sees the difficulty,
while per-record attacks (LiRA, RMIA) calibrate it away.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from qmu_core.attacks.base import Attack, Observations, Reference, balanced_threshold, logit_confidence
from qmu_core.attacks.gap import GapAttack
from qmu_core.attacks.lira import LiraOffline, LiraOnline
from qmu_core.attacks.loss import LossAttack
from qmu_core.attacks.rmia import Rmia
from qmu_core.errors import ConfigError

N_CLASSES = 10


@dataclass(frozen=True)
class Case:
    reference: Reference
    target: Observations
    target_member: np.ndarray  # (R,) bool
    audited: np.ndarray  # (R,) bool: the records judged (never population)


def _observations(stat: np.ndarray, label: np.ndarray, threat_model: str) -> Observations:
    """Probabilities with ``logit_confidence == stat``: ``p_y = sigmoid(stat)``, the rest uniform (float32)."""
    p_y = (1.0 / (1.0 + np.exp(-stat))).astype(np.float32)
    probs = np.repeat(((1.0 - p_y) / (N_CLASSES - 1))[:, None], N_CLASSES, axis=1).astype(np.float32)
    probs[np.arange(len(stat)), label] = p_y
    correct = probs.argmax(axis=1) == label
    if threat_model == "labels":
        return Observations("labels", label, correct=correct)
    return Observations("probs", label, probs=probs.astype(np.float64), correct=correct)


def _case(
    *,
    n_records: int = 2000,
    n_models: int = 16,
    offline: bool = False,
    threat_model: str = "probs",
    shift: float = 1.0,
    difficulty_sd: float = 2.0,
    seed: int = 0,
) -> Case:
    """Reference models on random halves (of all records, or of the population only if `offline`)."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, difficulty_sd, n_records)
    label = rng.integers(0, N_CLASSES, n_records)
    population = np.zeros(n_records, dtype=bool)
    population[rng.choice(n_records, n_records // 4, replace=False)] = True
    membership = rng.random((n_models, n_records)) < 0.5
    if offline:
        membership &= population
    target_member = (rng.random(n_records) < 0.5) & ~population

    def model(member: np.ndarray) -> Observations:
        stat = difficulty + shift * member + rng.normal(0.0, 0.5, n_records)
        return _observations(stat, label, threat_model)

    reference = Reference(tuple(model(row) for row in membership), membership, population)
    return Case(reference, model(target_member), target_member, ~population)


def _auc(attack: Attack, case: Case) -> float:
    scores = attack.fit(case.reference).score(case.target)
    return float(roc_auc_score(case.target_member[case.audited], scores[case.audited]))


def _balanced_accuracy(attack: Attack, case: Case) -> float:
    called = attack.score(case.target)[case.audited] > attack.threshold
    truth = case.target_member[case.audited]
    return float((called[truth].mean() + (~called[~truth]).mean()) / 2)


@pytest.fixture(scope="module")
def online_case() -> Case:
    return _case()


@pytest.fixture(scope="module")
def offline_case() -> Case:
    return _case(offline=True, seed=1)


def test_loss_attack_sees_mostly_the_difficulty(online_case: Case) -> None:
    stat = logit_confidence(online_case.target)
    assert np.isfinite(stat).all() and stat.std() > 1.5  # the difficulty's spread, not only the noise
    # The loss attack sees mostly the difficulty: AUC near Phi(1 / sqrt(2 * 4.25)) = 0.63.
    assert 0.58 < _auc(LossAttack(), online_case) < 0.69


@pytest.mark.parametrize("fixed_variance", [True, False])
def test_per_record_attacks_beat_the_loss_attack_online(online_case: Case, fixed_variance: bool) -> None:
    loss = _auc(LossAttack(), online_case)
    online = _auc(LiraOnline(fixed_variance=fixed_variance), online_case)
    offline = _auc(LiraOffline(fixed_variance=fixed_variance), online_case)
    rmia = _auc(Rmia(), online_case)
    assert online > 0.85  # an oracle knowing d_r reaches Phi(sqrt 2) = 0.92
    for auc in (online, offline, rmia):
        assert auc > loss + 0.15


@pytest.mark.parametrize("fixed_variance", [True, False])
def test_offline_attacks_beat_the_loss_attack(offline_case: Case, fixed_variance: bool) -> None:
    loss = _auc(LossAttack(), offline_case)
    assert _auc(LiraOffline(fixed_variance=fixed_variance), offline_case) > loss + 0.15
    # Offline RMIA leans on its constant a: the default 0.3 assumes members near p_y = 1.
    assert _auc(Rmia(), offline_case) > loss + 0.08
    assert _auc(Rmia(a=0.8), offline_case) > loss + 0.15


@pytest.mark.parametrize(
    "attack",
    [LossAttack(), LiraOnline(), LiraOnline(fixed_variance=False), LiraOffline(), LiraOffline(False), Rmia()],
    ids=lambda a: f"{a.name}-{getattr(a, 'fixed_variance', '')}",
)
def test_thresholds_separate_the_target(online_case: Case, attack: Attack) -> None:
    attack.fit(online_case.reference)
    assert np.isfinite(attack.threshold)
    floor = 0.57 if isinstance(attack, LossAttack) else 0.72
    assert _balanced_accuracy(attack, online_case) > floor


def test_offline_thresholds_separate_the_target(offline_case: Case) -> None:
    for attack, floor in ((LiraOffline(), 0.78), (Rmia(), 0.68)):
        attack.fit(offline_case.reference)
        assert _balanced_accuracy(attack, offline_case) > floor, attack.name


def test_saturated_probabilities_give_finite_scores() -> None:
    # Difficulty 30 makes p_y exactly 1.0 in float32 (the other classes exactly 0) on most records.
    case = _case(n_records=400, n_models=6, difficulty_sd=30.0, seed=3)
    assert (case.target.probs is not None) and (case.target.probs.max(axis=1) == 1.0).mean() > 0.2
    for attack in (LossAttack(), LiraOnline(), LiraOnline(False), LiraOffline(), LiraOffline(False), Rmia()):
        scores = attack.fit(case.reference).score(case.target)
        assert np.isfinite(attack.threshold), attack.name
        assert np.isfinite(scores).all(), attack.name


def test_label_only_attacks_run_and_find_some_signal() -> None:
    case = _case(threat_model="labels", n_models=32, seed=4)
    for attack in (GapAttack(), LiraOnline(), LiraOffline(), Rmia()):
        scores = attack.fit(case.reference).score(case.target)
        assert np.isfinite(scores).all() and np.isfinite(attack.threshold), attack.name
        auc = roc_auc_score(case.target_member[case.audited], scores[case.audited])
        assert auc > 0.53, (attack.name, auc)


def _expectations_case(*, offline: bool, seed: int = 5) -> Case:
    """⟨Z⟩ on 3 qubits whose member shift points up or down depending on the record's class."""
    rng = np.random.default_rng(seed)
    n_records, n_models, n_qubits = 2000, 16, 3
    label = rng.integers(0, N_CLASSES, n_records)
    direction = rng.choice([-1.0, 1.0], size=(N_CLASSES, n_qubits))[label]
    centre = rng.uniform(-0.5, 0.5, (n_records, n_qubits))
    population = np.zeros(n_records, dtype=bool)
    population[: n_records // 4] = True
    membership = rng.random((n_models, n_records)) < 0.5
    if offline:
        membership &= population
    target_member = (rng.random(n_records) < 0.5) & ~population

    def model(member: np.ndarray) -> Observations:
        z = centre + 0.1 * direction * member[:, None] + rng.normal(0.0, 0.1, (n_records, n_qubits))
        return Observations("expectations", label, z=z)

    reference = Reference(tuple(model(row) for row in membership), membership, population)
    return Case(reference, model(target_member), target_member, ~population)


@pytest.mark.parametrize("offline", [False, True])
def test_expectations_lira_learns_each_qubits_direction(offline: bool) -> None:
    case = _expectations_case(offline=offline)
    # Per qubit the shift is one noise sd; three qubits: an oracle reaches Phi(sqrt(3) / sqrt 2) = 0.89.
    assert _auc(LiraOffline(), case) > 0.8
    if not offline:
        assert _auc(LiraOnline(), case) > 0.8


def test_applicability() -> None:
    offline = _case(n_records=200, n_models=4, offline=True, seed=6)
    assert LiraOnline().applicable(offline.reference) is not None
    assert LiraOffline().applicable(offline.reference) is None
    assert Rmia().applicable(offline.reference) is None
    with pytest.raises(ConfigError):
        LiraOnline().fit(offline.reference)
    online = _case(n_records=200, n_models=4, seed=6)
    assert LiraOnline().applicable(online.reference) is None
    labels = _case(n_records=200, n_models=4, threat_model="labels", seed=6)
    assert LossAttack().applicable(labels.reference) is not None
    assert GapAttack().applicable(labels.reference) is None
    assert Rmia().applicable(labels.reference) is None
    expectations = _expectations_case(offline=False)
    for attack in (GapAttack(), LossAttack(), Rmia()):
        assert attack.applicable(expectations.reference) is not None, attack.name
    assert LiraOnline().applicable(expectations.reference) is None
    no_population = Reference(online.reference.models, online.reference.membership, np.zeros(200, dtype=bool))
    assert Rmia().applicable(no_population) is not None


def test_gap_and_loss_scores_by_hand() -> None:
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3], [1.0, 0.0, 0.0]])
    label = np.array([0, 1, 1, 1])
    obs = Observations("probs", label, probs=probs, correct=probs.argmax(axis=1) == label)
    members = np.array([[True, False, True, False]])
    reference = Reference((obs,), members, np.zeros(4, dtype=bool))
    gap = GapAttack().fit(reference)
    np.testing.assert_array_equal(gap.score(obs), [1.0, 0.0, 1.0, 0.0])
    assert gap.threshold == 0.5
    loss = LossAttack().fit(reference)
    np.testing.assert_allclose(loss.score(obs), np.log([0.7, 0.1, 0.4, 1e-30]))
    # Members score log 0.7 and log 0.4, non-members log 0.1 and log 1e-30: cut between log 0.1 and log 0.4.
    assert loss.threshold == pytest.approx((np.log(0.1) + np.log(0.4)) / 2)


def test_balanced_threshold_by_hand() -> None:
    scores = np.array([0.1, 0.2, 0.2, 0.5, 0.9, 0.9])
    member = np.array([False, False, True, True, True, False])
    # Cuts: >0.15 -> TPR 1, TNR 1/3; >0.35 -> TPR 2/3, TNR 2/3; >0.7 -> 1/3, 2/3; best: 0.15 (tie -> lowest).
    assert balanced_threshold(scores, member) == pytest.approx(0.15)
    assert balanced_threshold(np.array([0.0, 1.0]), np.array([False, True])) == pytest.approx(0.5)
    below = balanced_threshold(np.array([2.0, 2.0, 1.0]), np.array([True, True, False]))
    assert 1.0 <= below < 2.0
    # Every member above every non-member but with ties across: the cut calls the top value only.
    assert balanced_threshold(np.array([3.0, 3.0, 1.0]), np.array([True, False, False])) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        balanced_threshold(np.array([1.0, 2.0]), np.array([True, True]))


def test_rmia_counts_population_records_beaten() -> None:
    # Two reference models, one record each way; population = records 2 and 3.
    probs_ref = np.array([0.5, 0.5, 0.5, 0.25])
    label = np.zeros(4, dtype=np.int64)

    def obs(p: np.ndarray) -> Observations:
        return Observations("probs", label, probs=np.column_stack([p, 1.0 - p]), correct=p > 0.5)

    members = np.array([[True, False, True, False], [False, False, False, True]])
    population = np.array([False, False, True, True])
    reference = Reference((obs(probs_ref), obs(probs_ref)), members, population)
    rmia = Rmia(gamma=1.0, a=0.5).fit(reference)
    target = obs(np.array([0.9, 0.3, 0.5, 0.5]))
    # Pr(x): record 0 online 0.5; record 1 offline 0.5 * (1.5 * 0.5 + 0.5) = 0.625; records 2, 3: 0.5, 0.25.
    # Ratios: 1.8, 0.48, 1.0, 2.0; population ratios {1.0, 2.0}: beaten counts 1, 0, 0, 1.
    np.testing.assert_allclose(rmia.score(target), [0.5, 0.0, 0.0, 0.5])
    assert np.isfinite(rmia.threshold)
