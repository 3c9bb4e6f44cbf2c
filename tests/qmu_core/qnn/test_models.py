"""The TFQ model against references: cirq.Simulator outputs, parameter-shift gradients."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qmu_core._tf import tf, tfq
from qmu_core.config import ModelConfig, TrainConfig
from qmu_core.errors import ArtifactError
from qmu_core.qnn import training
from qmu_core.qnn.backends.plain import PlainTFQBackend
from qmu_core.qnn.models import build_model
from qmu_core.unlearning import ga
from tests.support import MODEL_CASES, cirq_expectations, random_inputs


def _model(seed: int = 0, *, image_side: int = 8, **kw):
    cfg = ModelConfig(**({"n_qubits": 3, "layers": 2} | kw))
    return build_model(cfg, n_classes=4, image_side=image_side, seed=seed), cfg


CASES = [
    *MODEL_CASES,
    {"encoding": "angle", "n_qubits": 8, "layers": 3},
]


BACKENDS = ["tfq", "tfq_packed"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kw", CASES, ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()))
def test_tfq_expectations_equal_cirq_simulator(kw: dict, backend: str) -> None:
    qnn, cfg = _model(backend=backend, **kw)
    assert qnn.backend.name == backend
    x = random_inputs(cfg, 4)
    got = qnn.expectations(tf.constant(x)).numpy()
    np.testing.assert_allclose(got, cirq_expectations(qnn, x), atol=1e-5)
    probs = qnn(tf.constant(x)).numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(qnn.predict_probs(tf.constant(x)).numpy(), probs, atol=2e-6)


@pytest.mark.parametrize("kw", CASES[:3], ids=["angle", "reupload", "amplitude"])
def test_adjoint_gradients_equal_parameter_shift(kw: dict) -> None:
    qnn, cfg = _model(**kw)
    x = tf.constant(random_inputs(cfg, 3))
    plain = PlainTFQBackend(cfg)
    values = tf.concat([plain.symbol_values(x), tf.tile(qnn.variables["theta"][None], [3, 1])], 1)
    programs = tf.tile(plain.program, [3])
    ops = tf.tile(plain.operators, [3, 1])
    weights = tf.constant(np.random.default_rng(2).normal(size=(3, cfg.n_qubits)).astype(np.float32))
    grads = []
    for diff in (tfq.differentiators.Adjoint(), tfq.differentiators.ParameterShift()):
        layer = tfq.layers.Expectation(differentiator=diff)
        v = tf.Variable(values)
        with tf.GradientTape() as tape:
            z = layer(programs, symbol_names=plain.symbol_names, symbol_values=v, operators=ops)
            loss = tf.reduce_sum(z * weights)
        grads.append(tape.gradient(loss, v).numpy())
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-4)
    assert np.abs(grads[0]).max() > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_hqnn_gradients_reach_the_cnn_and_match_finite_differences(backend: str) -> None:
    qnn, cfg = _model(kind="hqnn", encoding="amplitude", layers=1, backend=backend)
    x = tf.constant(random_inputs(cfg, 4))
    y = tf.constant([0, 1, 2, 3])
    kernel = qnn.variables["conv_k"]

    def loss() -> tf.Tensor:
        return tf.reduce_mean(training.per_record_loss(qnn(x), y, "cross_entropy"))

    with tf.GradientTape() as tape:
        value = loss()
    g = tape.gradient(value, [kernel, qnn.variables["dense_w"]])
    assert all(np.isfinite(t.numpy()).all() for t in g)
    assert np.abs(g[0].numpy()).max() > 1e-5 and np.abs(g[1].numpy()).max() > 1e-5
    # central differences on the three kernel entries with the largest gradient
    flat = np.argsort(-np.abs(g[0].numpy()).ravel())[:3]
    base = kernel.numpy()
    for idx in flat:
        pos = np.unravel_index(idx, base.shape)
        h = 1e-2
        bumped = base.copy()
        bumped[pos] += h
        kernel.assign(bumped)
        up = float(loss())
        bumped[pos] -= 2 * h
        kernel.assign(bumped)
        down = float(loss())
        kernel.assign(base)
        fd = (up - down) / (2 * h)
        assert fd == pytest.approx(float(g[0].numpy()[pos]), rel=0.05, abs=2e-4)


def test_weights_roundtrip_and_mismatch_errors() -> None:
    qnn, cfg = _model(seed=0)
    other, _ = _model(seed=5)
    frame = qnn.weights_frame("target")
    other.load_frame(frame)
    x = tf.constant(random_inputs(cfg, 3))
    np.testing.assert_allclose(other(x).numpy(), qnn(x).numpy(), atol=1e-6)
    bigger, _ = _model(layers=3)
    with pytest.raises(ArtifactError, match="shape"):
        bigger.load_frame(frame)
    hq, _ = _model(kind="hqnn", encoding="amplitude", layers=1)
    with pytest.raises(ArtifactError, match="different model config"):
        hq.load_frame(frame)


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_lowers_the_loss_and_is_deterministic(backend: str) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64).astype(np.int32)
    x = (np.where(y[:, None] == 1, 2.5, 0.6) + rng.normal(0, 0.2, (64, 3))).astype(np.float32)
    train = TrainConfig(epochs=6, batch_size=16, learning_rate=0.1)
    histories, probs = [], []
    for _ in range(2):
        qnn, _ = _model(seed=3, backend=backend)
        histories.append(training.fit(qnn, x, y, train, seed=1))
        probs.append(training.predict_proba(qnn, x))
    assert histories[0][-1]["loss"] < histories[0][0]["loss"]
    assert histories[0][-1]["acc"] > 0.8
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-6)


def test_complement_loss_is_minus_log_one_minus_p() -> None:
    logits = tf.constant([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [30.0, -5.0, 1.0]], tf.float64)
    y = tf.constant([0, 2, 0])
    p = tf.nn.softmax(logits).numpy()[np.arange(3), y.numpy()]
    expected = -np.log1p(-p[:2])
    np.testing.assert_allclose(ga.complement_loss(logits, y).numpy()[:2], expected, rtol=1e-12)
    assert np.isfinite(ga.complement_loss(logits, y).numpy()[2]) and ga.complement_loss(logits, y).numpy()[2] > 25


def test_predict_outputs_has_one_row_per_record() -> None:
    qnn, cfg = _model()
    x = random_inputs(cfg, 5)
    frame = pd.DataFrame(
        {
            "sample_id": range(5),
            "label": [0, 1, 2, 3, 0],
            "role": "test",
            "is_forget": False,
            "x": list(x),
            "pixels": list(np.zeros((5, 64), np.float32)),
        }
    )
    out = training.predict_outputs(qnn, frame, model_cfg=cfg, classes=(0, 1, 2, 3), loss="cross_entropy", model_id="t")
    probs = np.stack(out["prob"])
    np.testing.assert_allclose(out["loss"], -np.log(probs[np.arange(5), [0, 1, 2, 3, 0]]), rtol=1e-5)
    assert (out["correct"] == (probs.argmax(1) == np.array([0, 1, 2, 3, 0]))).all()
