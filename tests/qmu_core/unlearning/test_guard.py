"""The retained-accuracy guard and the step-size rule (`qmu_core.unlearning.guard`)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from qmu_core.config import ModelConfig, QMUConfig, TrainConfig, UnlearnConfig
from qmu_core.config.overrides import apply_overrides
from qmu_core.errors import ConfigError
from qmu_core.qnn import training
from qmu_core.qnn.models import build_model
from qmu_core.unlearning.base import Evals, Request, accuracy
from qmu_core.unlearning.ga import GradientAscent
from qmu_core.unlearning.guard import guard_slice, guarded_run, make_guard

TRAIN = TrainConfig(epochs=8, batch_size=16, learning_rate=0.1)


def _records(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    return (np.choose(y, [0.3, 1.5, 2.7])[:, None] + rng.normal(0, 0.15, (n, 3))).astype(np.float32), y


def _trained(cfg: UnlearnConfig | None = None):  # type: ignore[no-untyped-def]
    """A 3-qubit model trained on three separable classes; class 1 is the forget class.

    With `cfg`, the request has a guard from 60 held-out records of the retained classes.
    """
    x, y = _records(150, seed=0)
    qnn = build_model(ModelConfig(n_qubits=3, layers=2), n_classes=3, image_side=8, seed=1)
    training.fit(qnn, x, y, TRAIN, seed=1)
    forget = y == 1
    request = Request("class", x[forget], y[forget], x[~forget], y[~forget], stop_acc=0.05)
    if cfg is None:
        return qnn, request
    xh, yh = _records(90, seed=1)
    guard = make_guard(qnn, xh[yh != 1], yh[yh != 1], cfg, seed=0, evals=Evals())
    return qnn, replace(request, guard=guard)


def _weights(qnn) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    return {k: v.numpy().copy() for k, v in qnn.variables.items()}


def test_the_guard_slice_is_fixed_by_the_seed_and_its_floor_by_the_model_before() -> None:
    assert np.array_equal(guard_slice(100, 30, seed=4), guard_slice(100, 30, seed=4))
    assert not np.array_equal(guard_slice(100, 30, seed=4), guard_slice(100, 30, seed=5))
    assert len(guard_slice(20, 50, seed=0)) == 20 and len(guard_slice(0, 50, seed=0)) == 0
    cfg = UnlearnConfig(guard_records=20, guard_drop=0.05)
    qnn, request = _trained(cfg)
    assert request.guard is not None and len(request.guard.x) == 20 and 1 not in set(request.guard.y)
    assert request.guard.floor == pytest.approx(request.guard.before - 0.05)
    assert request.guard.before > 0.8  # the model knows the retained classes
    x, y = _records(10, seed=1)
    assert make_guard(qnn, x[:0], y[:0], cfg, seed=0, evals=Evals()) is None  # no held-out records: no guard


def test_the_guard_stops_a_method_that_would_fall_below_it() -> None:
    """GA at a reckless step size wrecks the retained classes; under the guard it stops first."""
    cfg = UnlearnConfig(learning_rate=10.0, max_epochs=20, guard_records=40, guard_drop=0.05)
    qnn, guarded = _trained(cfg)
    assert guarded.guard is not None
    free, _ = _trained()
    GradientAscent(cfg, TRAIN).run(free, replace(guarded, guard=None), seed=0)
    unguarded_acc = accuracy(free, guarded.guard.x, guarded.guard.y, Evals())
    assert unguarded_acc < guarded.guard.floor  # without the guard, the step wrecks the retained classes

    result = GradientAscent(cfg, TRAIN).run(qnn, guarded, seed=0)
    assert result.guard_stopped and not result.reached_stop
    assert accuracy(qnn, guarded.guard.x, guarded.guard.y, Evals()) >= guarded.guard.floor


def test_the_step_size_rule_keeps_the_largest_factor_within_the_guard_and_is_deterministic() -> None:
    cfg = UnlearnConfig(learning_rate=10.0, max_epochs=20, guard_records=40, step_scales=(1.0, 0.3, 0.01))
    runs = []
    for _ in range(2):
        qnn, request = _trained(cfg)
        kept = guarded_run(GradientAscent, cfg, TRAIN, qnn, request, seed=7)
        runs.append((kept, _weights(qnn)))
    (first, w1), (second, w2) = runs
    assert first.tried[0]["guard_stopped"] == 1.0  # the configured step size trips the guard ...
    assert first.scale == 0.3 and first.result.reached_stop  # ... the next one forgets within it
    assert first.guard_acc is not None and first.guard_floor is not None and first.guard_acc >= first.guard_floor
    assert first.scale == second.scale and first.tried == second.tried
    for name in w1:
        np.testing.assert_array_equal(w1[name], w2[name])  # same seed, same bits
    assert first.result.circuit_evals > 0


def test_a_method_that_cannot_meet_both_says_so_and_keeps_what_got_furthest() -> None:
    cfg = UnlearnConfig(learning_rate=10.0, max_epochs=20, guard_records=40, step_scales=(1.0,))
    qnn, request = _trained(cfg)
    kept = guarded_run(GradientAscent, cfg, TRAIN, qnn, request, seed=0)
    assert not kept.result.reached_stop
    assert kept.result.note.startswith("could not meet both its forget target and the guard")
    assert kept.tried == [{"scale": 1.0, "reached": 0.0, "guard_stopped": 1.0}]
    assert kept.guard_acc is not None and kept.guard_floor is not None and kept.guard_acc >= kept.guard_floor


def test_step_scales_must_decrease_within_zero_and_one() -> None:
    for bad in ("[0.5, 1]", "[1, 1]", "[2, 1]", "[1, 0]"):
        with pytest.raises(ConfigError, match="largest first"):
            apply_overrides(QMUConfig(), [f"unlearn.step_scales={bad}"])
