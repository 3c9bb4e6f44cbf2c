"""Deletion requests, the unlearning comparison against the oracle, GA on saturated models, relearn time.

Also the stage keys of the methods.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from qmu_core import artifacts, splits
from qmu_core._tf import tf
from qmu_core.config import DataConfig, FeatureSpec, ModelConfig, TrainConfig, UnlearnConfig, preset
from qmu_core.errors import DataError
from qmu_core.identity import Which
from qmu_core.membership import member_mask
from qmu_core.provenance import ModelFacts, RelearnFacts
from qmu_core.qnn import training
from qmu_core.qnn.models import build_model
from qmu_core.unlearning import compare, relearn
from qmu_core.unlearning.base import Request
from qmu_core.unlearning.ga import GradientAscent
from tests.support import random_inputs

SPEC = FeatureSpec(encoding="angle", n_components=4)


def _data(**kw: object) -> DataConfig:
    return preset("tiny").data.model_copy(update=kw)


def _train_ids(seed: int = 0) -> np.ndarray:
    frame = splits.split_roles(_data(), SPEC, seed=seed).frame
    return frame.loc[frame["role"] == "target_train", "sample_id"].to_numpy()


# ---------------------------------------------------------------- deletion requests


def test_a_sample_request_marks_exactly_those_training_records_and_a_same_class_control() -> None:
    ids = [int(i) for i in _train_ids()[:20]]
    out = splits.split_roles(_data(forget="samples", forget_ids=tuple(ids)), SPEC, seed=0)
    frame = out.frame
    train = frame["role"] == "target_train"
    assert sorted(frame.loc[train & frame["is_forget"], "sample_id"]) == sorted(ids)
    control = frame[frame["is_forget"] & ~train]
    assert set(control["role"]) == {"target_holdout"}
    assert set(control["label"]) == set(frame.loc[frame["sample_id"].isin(ids), "label"])
    assert out.facts.request == "samples" and out.facts.forget_in_train == 20
    assert out.facts.forget_ids_sha256 == splits.request_hash(np.array(ids[::-1]))  # order does not matter


def test_the_oracle_never_sees_a_deleted_record_through_the_split_artifact(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ids = tuple(int(i) for i in _train_ids()[5:25])
    for data in (_data(), _data(forget="samples", forget_ids=ids)):
        out = splits.split_roles(data, SPEC, seed=0)
        ref = artifacts.plan("splits", {"data": data}, root=tmp_path)
        artifacts.write_output(out, ref, {"data": data})
        frame = artifacts.read(ref)  # what the oracle's training stage reads
        deleted = frame.loc[(frame["role"] == "target_train") & frame["is_forget"], "sample_id"]
        seen = frame.loc[member_mask(frame, "oracle", seed=0), "sample_id"]
        assert len(deleted) > 0 and not set(deleted) & set(seen)
        assert len(seen) + len(deleted) == (frame["role"] == "target_train").sum()  # it keeps every other record
        if data.forget == "samples":
            assert set(deleted) == set(ids)


def test_unknown_ids_fail_naming_them_and_where_the_valid_ones_are() -> None:
    frame = splits.split_roles(_data(), SPEC, seed=0).frame
    holdout = int(frame.loc[frame["role"] == "target_holdout", "sample_id"].iloc[0])
    absent = int(max(set(range(1797)) - set(frame["sample_id"])))
    train = int(_train_ids()[0])
    with pytest.raises(DataError) as err:
        splits.split_roles(_data(forget="samples", forget_ids=(train, holdout, absent)), SPEC, seed=0)
    text = str(err.value)
    assert f"{holdout}: target_holdout" in text and str(absent) in text and "not in this split" in text
    assert "role == 'target_train'" in text


def test_a_request_for_the_whole_training_set_fails() -> None:
    ids = tuple(int(i) for i in _train_ids())
    with pytest.raises(DataError, match="covers all 120 target training records"):
        splits.split_roles(_data(forget="samples", forget_ids=ids), SPEC, seed=0)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"forget": "samples"}, "empty deletion request"),
        ({"forget": "samples", "forget_ids": (3, 3)}, "repeats sample_ids \\[3\\]"),
        ({"forget": "samples", "forget_ids": (-1,)}, "negative sample_ids"),
        ({"forget_ids": (3,)}, "set data.forget='samples'"),
    ],
)
def test_bad_requests_fail_in_the_config(kw: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DataConfig(**kw)


# ---------------------------------------------------------------- stage keys


def test_a_method_stage_is_keyed_by_what_it_reads_only() -> None:
    base = UnlearnConfig()
    tuned = base.model_copy(update={"ssd_alpha": 3.0, "seeds": 3, "methods": ("ga", "ssd")})
    assert tuned.for_stage("ga") == base.for_stage("ga")  # tuning SSD or adding repeats never re-runs GA
    assert tuned.for_stage("ssd") != base.for_stage("ssd")
    assert base.for_stage("relearn") == tuned.for_stage("relearn")
    assert base.model_copy(update={"batch_size": 8}).for_stage("relearn") != base.for_stage("relearn")


# ---------------------------------------------------------------- comparison


def test_js_divergence_is_zero_for_equal_rows_and_one_for_disjoint_ones() -> None:
    p = np.array([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0]])
    q = np.array([[0.2, 0.8, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(compare.js_divergence(p, q), [0.0, 1.0], atol=1e-12)
    r = np.array([[0.5, 0.5, 0.0]])
    expected = 0.5 * (0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25)) + 0.5 * np.log2(1 / 0.75)
    np.testing.assert_allclose(compare.js_divergence(r, np.array([[1.0, 0.0, 0.0]])), [expected], rtol=1e-12)


def _outputs(probs: list[list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample_id": range(len(probs)),
            "role": "target_train",
            "is_forget": True,
            "prob": [np.array(p, np.float32) for p in probs],
        }
    )


def test_compare_methods_gives_gaps_to_the_oracle_per_repeat_and_means_with_cis() -> None:
    metrics = []
    for k, (ga, oracle) in enumerate([(0.9, 0.8), (0.7, 0.8)]):
        for which, acc in ((Which.before(k), 1.0), (Which.unlearned("ga", k), ga), (Which.oracle(k), oracle)):
            metrics.append({"phase": which.phase, "attack": "", "metric": "retain_test_acc", "value": acc})
            metrics.append({"phase": which.phase, "attack": "loss", "metric": "forget_auc", "value": acc / 2})
    facts = {
        "noop": ModelFacts(which="target"),
        "ga": ModelFacts(which="unlearned-ga", passes=2, reached_stop=True, wall_s=1.5, circuit_evals=40),
        "retrain": ModelFacts(which="oracle", wall_s=10.0, circuit_evals=400),
    }
    relearned = {"ga": RelearnFacts(which="unlearned-ga", target_acc=0.9, steps=3, max_steps=10)}
    relearned["retrain"] = RelearnFacts(which="oracle", target_acc=0.9, steps=None, max_steps=10)
    outs = {"noop": _outputs([[1, 0]]), "ga": _outputs([[0.5, 0.5]]), "retrain": _outputs([[0, 1]])}
    repeat = compare.Repeat(outputs=outs, facts=facts, relearn=relearned)
    table = compare.compare_methods(pd.DataFrame(metrics), [repeat, repeat], methods=["ga"], attacks=["loss"])
    row = table.set_index(["repeat", "method", "metric"])
    assert row.loc[(0, "ga", "retain_test_acc"), "gap"] == pytest.approx(0.1)
    assert row.loc[(1, "ga", "retain_test_acc"), "gap"] == pytest.approx(-0.1)
    assert row.loc[(0, "ga", "loss:forget_auc"), "value"] == pytest.approx(0.45)
    assert row.loc[(0, "retrain", "js_to_oracle"), "value"] == 0.0
    assert row.loc[(0, "noop", "js_to_oracle"), "value"] == pytest.approx(1.0)
    assert row.loc[(0, "ga", "relearn_steps"), "value"] == 3
    assert math.isnan(row.loc[(0, "retrain", "relearn_steps"), "value"])  # not regained within the limit
    agg = compare.aggregate(table).set_index(["method", "metric"])
    cell = agg.loc[("ga", "retain_test_acc")]
    assert cell["mean"] == pytest.approx(0.8) and cell["n"] == 2
    half = 12.706204736174698 * np.std([0.9, 0.7], ddof=1) / np.sqrt(2)  # t(0.975, 1 dof): 1.27
    assert half > 0.8 and (cell["ci_low"], cell["ci_high"]) == (0.0, 1.0)  # an accuracy's interval stays in [0, 1]
    gap = agg.loc[("ga", "retain_test_acc")]
    assert (gap["gap_ci_low"], gap["gap_ci_high"]) == (-1.0, 1.0)  # 0 ± 1.27, clipped to [-1, 1]
    cost = agg.loc[("ga", "relearn_steps")]
    assert cost["ci_high"] - cost["mean"] == pytest.approx(cost["mean"] - cost["ci_low"])  # unbounded: not clipped
    assert compare.within("retain_test_acc", 0.05) and not compare.within("retain_test_acc", -0.06)
    assert compare.within("loss:forget_auc", 0.02) and compare.within("wall_s", 100.0) is None


# ---------------------------------------------------------------- GA and relearn on a small model


def _small(seed: int = 0):  # type: ignore[no-untyped-def]
    cfg = ModelConfig(n_qubits=3, layers=2)
    return build_model(cfg, n_classes=4, image_side=8, seed=seed), cfg


def _request(x: np.ndarray, y: np.ndarray, forget: np.ndarray, stop: float) -> Request:
    return Request("class", x[forget], y[forget], x[~forget], y[~forget], stop_acc=stop)


def test_gradient_ascent_forgets_and_stops_at_the_threshold() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64).astype(np.int32)
    x = (np.where(y[:, None] == 1, 2.5, 0.6) + rng.normal(0, 0.2, (64, 3))).astype(np.float32)
    qnn, _ = _small(seed=3)
    training.fit(qnn, x, y, TrainConfig(epochs=6, batch_size=16, learning_rate=0.1), seed=1)
    forget = y == 1
    before = float(np.mean(training.predict_proba(qnn, x[forget]).argmax(1) == 1))
    cfg = UnlearnConfig(learning_rate=0.2, max_epochs=30, objective="ascent")
    result = GradientAscent(cfg, TrainConfig(loss="bce_sum")).run(qnn, _request(x, y, forget, 0.1), seed=0)
    after = float(np.mean(training.predict_proba(qnn, x[forget]).argmax(1) == 1))
    assert before > 0.8 and after <= 0.1 and result.reached_stop
    assert result.history[-1]["forget_acc"] == pytest.approx(after)
    assert len(result.history) < 30
    assert all(h["forget_acc"] > 0.1 for h in result.history[:-1])
    assert result.circuit_evals >= 2 * forget.sum() * len(result.history)


def test_the_complement_objective_raises_the_forget_loss_of_a_saturated_model_where_the_papers_rule_cannot() -> None:
    x = random_inputs(_small()[1], 32)
    result = {}
    for objective in ("ascent", "complement"):
        qnn, _ = _small(seed=5)
        qnn.variables["head_w"].assign(qnn.variables["head_w"] * 400.0)  # a saturated softmax
        y = training.predict_proba(qnn, x).argmax(1).astype(np.int32)  # the model is right and sure

        def forget_loss(qnn=qnn, y=y) -> float:  # type: ignore[no-untyped-def]
            probs = tf.constant(training.predict_proba(qnn, x))
            return float(tf.reduce_mean(training.per_record_loss(probs, tf.constant(y), "cross_entropy")))

        assert forget_loss() < 1e-3
        cfg = UnlearnConfig(objective=objective, learning_rate=0.01, max_epochs=3)  # the paper's HQNN lr
        out = GradientAscent(cfg, TrainConfig()).run(qnn, _request(x, y, np.ones(32, bool), 0.0), seed=0)
        result[objective] = (forget_loss(), out.history[-1]["forget_acc"], out.reached_stop)
    assert result["ascent"][0] < 0.01 and result["ascent"][1] == 1.0, result  # the paper's rule: stuck
    assert result["complement"][0] > 1.0 and result["complement"][1] < 0.5, result  # the surrogate forgets


def test_relearn_counts_steps_until_the_forget_accuracy_is_back() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 48).astype(np.int32)
    x = (np.where(y[:, None] == 1, 2.5, 0.6) + rng.normal(0, 0.2, (48, 3))).astype(np.float32)
    qnn, _ = _small(seed=3)
    train = TrainConfig(epochs=6, batch_size=16, learning_rate=0.1)
    training.fit(qnn, x, y, train, seed=1)
    acc = float(np.mean(training.predict_proba(qnn, x).argmax(1) == y))
    steps, curve = relearn.relearn_steps(qnn, x, y, train, target_acc=acc, batch_size=16, max_steps=5, seed=0)
    assert steps == 0 and curve == [pytest.approx(acc)]  # already there
    fresh, _ = _small(seed=11)
    steps, curve = relearn.relearn_steps(fresh, x, y, train, target_acc=0.95, batch_size=16, max_steps=300, seed=0)
    assert steps is not None and 0 < steps == len(curve) - 1 and curve[-1] >= 0.95 > max(curve[:-1])
    never, _ = _small(seed=11)
    steps, curve = relearn.relearn_steps(never, x, y, train, target_acc=1.01, batch_size=16, max_steps=3, seed=0)
    assert steps is None and len(curve) == 4


def test_a_sample_request_stops_on_the_held_out_loss_a_class_request_on_accuracy() -> None:
    x, y = np.zeros((2, 3), np.float32), np.zeros(2, np.int32)
    by_class = Request("class", x, y, x, y, stop_acc=0.05)
    assert by_class.reached({"forget_acc": 0.05, "forget_loss": 0.0})
    assert not by_class.reached({"forget_acc": 0.10, "forget_loss": 9.0})
    by_ids = Request("samples", x, y, x, y, stop_acc=0.9, stop_loss=0.4)
    assert by_ids.reached({"forget_acc": 1.0, "forget_loss": 0.41})  # still right, but no longer member-like
    assert not by_ids.reached({"forget_acc": 0.0, "forget_loss": 0.39})
    assert "held-out" in by_ids.target() and "accuracy" in by_class.target()
