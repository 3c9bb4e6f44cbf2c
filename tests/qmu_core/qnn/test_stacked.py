"""Model-batched training (`qmu_core.qnn.stacked`) against the single-model path, model by model."""

from __future__ import annotations

import numpy as np
import pytest

from qmu_core._tf import tf
from qmu_core.config import ModelConfig, TrainConfig
from qmu_core.errors import ConfigError
from qmu_core.qnn import training
from qmu_core.qnn.models import QNN
from qmu_core.qnn.stacked import QNNStack, fit_many
from tests.support import random_inputs

SEEDS = [3, 11, 29]
N_CLASSES = 3
SIDE = 8

CASES = {
    "angle": {"encoding": "angle", "n_qubits": 3, "layers": 2},
    "reupload": {"encoding": "angle", "n_qubits": 3, "layers": 2, "reupload": True},
    "amplitude": {"encoding": "amplitude", "n_qubits": 3, "layers": 2},
    "hqnn-amplitude": {"kind": "hqnn", "encoding": "amplitude", "n_qubits": 3, "layers": 1, "cnn_filters": 2},
}


def _cfg(case: str, backend: str = "tfq_packed") -> ModelConfig:
    return ModelConfig(**(CASES[case] | {"backend": backend}))


def _single(cfg: ModelConfig, seed: int) -> QNN:
    return QNN(cfg, n_classes=N_CLASSES, image_side=SIDE, seed=seed)


def _data(cfg: ModelConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Different inputs and labels per model, shapes (M, n, d) and (M, n)."""
    xs = np.stack([random_inputs(cfg, n, seed=100 + m, image_side=SIDE) for m in range(len(SEEDS))])
    ys = np.random.default_rng(5).integers(0, N_CLASSES, size=(len(SEEDS), n)).astype(np.int32)
    return xs, ys


def _live_theta(cfg: ModelConfig) -> np.ndarray:
    """Indices of the circuit weights that change ⟨Z⟩: all but the last layer's ``Z**(w2/pi)`` rotations.

    The last rotation of every qubit commutes with the Z readout, so its exact gradient is 0 and
    both paths see only float32 rounding noise there (~1e-9). Adam normalizes its step
    (``m / sqrt(v)``), turning that noise into full-size steps of arbitrary sign, so those
    weights drift differently in the two paths without any effect on the outputs (the test
    compares the outputs too). Weight order: layer, qubit, (w0, w1, w2).
    """
    n, layers = cfg.n_qubits, cfg.layers
    dead = {(layers - 1) * n * 3 + q * 3 + 2 for q in range(n)}
    return np.array([i for i in range(3 * n * layers) if i not in dead])


def _weights(qnn: QNN, live: np.ndarray) -> dict[str, np.ndarray]:
    """Copies of the variables, ``theta`` restricted to the weights that change the outputs."""
    out = {k: v.numpy().copy() for k, v in qnn.variables.items()}
    out["theta"] = out["theta"][live]
    return out


def _loss(probs: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(training.per_record_loss(probs, y, "cross_entropy"))


@pytest.mark.parametrize("case", ["angle", "amplitude", "hqnn-amplitude"])
def test_initial_weights_equal_single_models(case: str) -> None:
    cfg = _cfg(case)
    stack = QNNStack(cfg, n_classes=N_CLASSES, image_side=SIDE, seeds=SEEDS)
    for m, seed in enumerate(SEEDS):
        single = _single(cfg, seed)
        assert sorted(single.variables) == sorted(stack.variables)
        for name, var in single.variables.items():
            np.testing.assert_array_equal(stack.variables[name].numpy()[m], var.numpy(), err_msg=name)
        back = stack.model(m)
        for name, var in single.variables.items():
            np.testing.assert_array_equal(back.variables[name].numpy(), var.numpy(), err_msg=name)
    # the models really differ (different seeds), so slice m is not some other model's weights
    assert not np.allclose(stack.variables["theta"].numpy()[0], stack.variables["theta"].numpy()[1])


# every packed case (one op call for all models), and the default per-model loop of the plain backend
FORWARD_CASES = [*((c, "tfq_packed") for c in CASES), ("angle", "tfq"), ("hqnn-amplitude", "tfq")]


@pytest.mark.parametrize(("case", "backend"), FORWARD_CASES, ids=[f"{c}-{b}" for c, b in FORWARD_CASES])
def test_forward_and_gradients_equal_single_models(case: str, backend: str) -> None:
    cfg = _cfg(case, backend)
    stack = QNNStack(cfg, n_classes=N_CLASSES, image_side=SIDE, seeds=SEEDS)
    xs, ys = _data(cfg, 21)  # 21 records: the last packed program of every model is partly padding
    xt, yt = tf.constant(xs), tf.constant(ys)
    with tf.GradientTape() as tape:
        probs = stack(xt)
        loss = tf.reduce_sum([_loss(probs[m], yt[m]) for m in range(len(SEEDS))])
    grads = dict(zip(sorted(stack.variables), tape.gradient(loss, stack.trainable_variables), strict=True))
    for m, seed in enumerate(SEEDS):
        single = _single(cfg, seed)
        with tf.GradientTape() as tape:
            p = single(xt[m])
            single_loss = _loss(p, yt[m])
        single_grads = tape.gradient(single_loss, single.trainable_variables)
        # float32 forward of the same circuit; only summation order differs (batched matmuls,
        # depthwise vs plain convolution, one op call over all models' programs)
        np.testing.assert_allclose(probs[m].numpy(), p.numpy(), rtol=1e-5, atol=2e-6)
        for name, g in zip(sorted(single.variables), single_grads, strict=True):
            assert np.abs(g.numpy()).max() > 0, name  # a gradient that can disagree
            np.testing.assert_allclose(grads[name].numpy()[m], g.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


# every model kind and encoding of the issue, Adam and SGD with momentum (Nesterov is SGD's other flag)
FIT_CASES = [
    ("angle", "sgd"),
    ("amplitude", "adam"),
    ("hqnn-amplitude", "adam"),
    ("hqnn-amplitude", "sgd"),
]


@pytest.mark.parametrize(("case", "opt"), FIT_CASES, ids=[f"{c}-{o}" for c, o in FIT_CASES])
def test_fit_many_equals_fit_of_each_model(case: str, opt: str) -> None:
    cfg = _cfg(case)
    lr = 0.05 if opt == "adam" else 0.2
    train = TrainConfig(epochs=2, batch_size=8, learning_rate=lr, optimizer=opt, momentum=0.9)
    xs, ys = _data(cfg, 24)
    batch_seeds = [7, 8, 9]
    stack = QNNStack(cfg, n_classes=N_CLASSES, image_side=SIDE, seeds=SEEDS)
    seen: list[tuple[int, int, dict[str, float]]] = []
    histories = fit_many(stack, xs, ys, train, seeds=batch_seeds, progress=lambda e, n, r: seen.append((e, n, r)))
    assert [(e, n) for e, n, _ in seen] == [(1, 2), (2, 2)]
    live = _live_theta(cfg)
    for m, (seed, batch_seed) in enumerate(zip(SEEDS, batch_seeds, strict=True)):
        single = _single(cfg, seed)
        start = _weights(single, live)
        history = training.fit(single, xs[m], ys[m], train, seed=batch_seed)
        # The yardstick of float tolerance: the same single-model training with every input moved
        # by one float32 ulp. Six Adam/momentum steps amplify rounding differences unevenly (a
        # batch gradient element near 0 turns Adam's normalized step from +lr to -lr), e.g. by
        # ~1e-3 on the HQNN's dense_w, so a fixed rtol 1e-4 / atol 1e-5 holds for SGD and the
        # basic QNN but not for every HQNN Adam run. The stack's result must be as close to the
        # single model's as this perturbation moves it (x4), or within rtol 1e-4 / atol 1e-5.
        # A wrong batch order or a mixed-up model moves weights by O(lr) = 5e-2 and fails.
        nudged = _single(cfg, seed)
        training.fit(nudged, xs[m] * np.float32(1 + 2**-23), ys[m], train, seed=batch_seed)
        want, spread = _weights(single, live), _weights(nudged, live)
        got = _weights(stack.model(m), live)
        for name in want:
            assert not np.allclose(want[name], start[name]), name  # training moved every variable
            slack = 4 * float(np.abs(spread[name] - want[name]).max())
            np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5 + slack, err_msg=name)
        x = tf.constant(xs[m])
        p_want, p_spread = single(x).numpy(), nudged(x).numpy()
        slack = 4 * float(np.abs(p_spread - p_want).max())
        np.testing.assert_allclose(stack.model(m)(x).numpy(), p_want, rtol=1e-4, atol=1e-5 + slack)
        for got_epoch, want_epoch in zip(histories[m], history, strict=True):
            assert got_epoch == pytest.approx(want_epoch, rel=1e-4, abs=1e-5 + slack)


def test_fit_many_rejects_unequal_training_sets() -> None:
    cfg = _cfg("angle")
    stack = QNNStack(cfg, n_classes=N_CLASSES, image_side=SIDE, seeds=SEEDS[:2])
    train = TrainConfig(epochs=1, batch_size=8)
    xs = [random_inputs(cfg, 24), random_inputs(cfg, 20)]
    ys = [np.zeros(24, np.int32), np.zeros(20, np.int32)]
    with pytest.raises(ConfigError, match="same number of training records.*[Gg]roup the models by training-set size"):
        fit_many(stack, xs, ys, train, seeds=[1, 2])
    with pytest.raises(ConfigError, match="one entry per model"):
        fit_many(stack, xs[:1], ys[:1], train, seeds=[1])
