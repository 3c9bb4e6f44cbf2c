"""The packed backend (`qmu_core.qnn.backends.packed`) against cirq.Simulator and the plain TFQ backend."""

from __future__ import annotations

import cirq
import numpy as np
import pytest

from qmu_core._tf import tf
from qmu_core.config import ModelConfig
from qmu_core.qnn.backends import packed
from qmu_core.qnn.backends.dense import DenseBackend
from qmu_core.qnn.encoding import AMPLITUDE, ANGLE
from qmu_core.qnn.models import build_model
from tests.support import MODEL_CASES, cirq_expectations, random_inputs


def _model(backend: str, seed: int = 0, **kw):
    cfg = ModelConfig(**({"n_qubits": 3, "layers": 2, "backend": backend} | kw))
    return build_model(cfg, n_classes=4, image_side=8, seed=seed), cfg


def _loss_gradients(qnn, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Gradients of a fixed scalar loss of the class probabilities w.r.t. inputs and all variables."""
    xt = tf.constant(x)
    weights = tf.constant(np.random.default_rng(7).normal(size=(len(x), qnn.n_classes)).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(qnn(xt) * weights) + tf.reduce_sum(qnn.expectations(xt) ** 2)
    grads = tape.gradient(loss, [xt, *qnn.trainable_variables])
    return grads[0].numpy(), [g.numpy() for g in grads[1:]]


CASES = [
    *MODEL_CASES,
    {"encoding": "angle", "n_qubits": 2, "layers": 3},
    {"encoding": "amplitude", "n_qubits": 4, "layers": 2},
]
IDS = ["angle", "reupload", "amplitude", "hqnn-amplitude", "hqnn-angle", "angle-2q", "amplitude-4q"]


FLOAT32_EPS = float(np.finfo(np.float32).eps)


def _dense_twin(qnn, cfg: ModelConfig):
    """The same model (same variables) on the dense reference backend: exact autodiff gradients."""
    twin, _ = _model(
        "tfq_packed",
        **{k: v for k, v in cfg.model_dump().items() if k in {"encoding", "n_qubits", "layers", "kind", "reupload"}},
    )
    twin.backend = DenseBackend(cfg)
    for name, var in twin.variables.items():
        var.assign(qnn.variables[name])
    return twin


@pytest.mark.parametrize("kw", CASES, ids=IDS)
@pytest.mark.parametrize("batch", [1, 17])
def test_packed_equals_cirq_and_plain_gradients(kw: dict, batch: int) -> None:
    """Values against Cirq; gradients against the dense reference (exact) and TFQ's plain layer.

    TFQ's Adjoint differentiator builds its gradient gates by finite differences, so its
    gradients carry an error of order 1e-4 (measured up to 1.1e-4 on these cases). The native op
    of the amplitude route uses exact derivative matrices: it must match the dense reference
    to float32 rounding (a few hundred ulps of the largest entry).
    """
    fast, cfg = _model("tfq_packed", **kw)
    plain, _ = _model("tfq", **kw)
    assert fast.backend.name == "tfq_packed" and plain.backend.name == "tfq"
    x = random_inputs(cfg, batch, seed=batch)
    z = fast.expectations(tf.constant(x)).numpy()
    np.testing.assert_allclose(z, cirq_expectations(fast, x), atol=1e-5)
    gx_fast, gv_fast = _loss_gradients(fast, x)
    gx_plain, gv_plain = _loss_gradients(plain, x)
    assert np.abs(gx_plain).max() > 1e-3  # the input gradient is not trivially zero
    finite_difference = 3e-4  # TFQ's Adjoint (see the docstring)
    np.testing.assert_allclose(gx_fast, gx_plain, atol=finite_difference)
    for name, a, b in zip(sorted(fast.variables), gv_fast, gv_plain, strict=True):
        np.testing.assert_allclose(a, b, atol=finite_difference, err_msg=name)
    if cfg.reupload:
        return  # the dense reference has no re-uploading
    gx_ref, gv_ref = _loss_gradients(_dense_twin(fast, cfg), x)
    native = getattr(fast.backend, "packed", None) is not None and fast.backend.packed.native is not None
    for name, a, b in zip(["inputs", *sorted(fast.variables)], [gx_fast, *gv_fast], [gx_ref, *gv_ref], strict=True):
        scale = max(1.0, float(np.abs(b).max()))
        tol = 256 * FLOAT32_EPS * scale if native else finite_difference
        np.testing.assert_allclose(a, b, atol=tol, err_msg=f"{name} (native op: {native})")


@pytest.mark.parametrize("backend", ["tfq", "tfq_packed"])
@pytest.mark.parametrize("kw", CASES[:5], ids=IDS[:5])
def test_predict_probs_equals_call(backend: str, kw: dict) -> None:
    qnn, cfg = _model(backend, **kw)
    for n in (1, 6, 37):
        x = tf.constant(random_inputs(cfg, n, seed=n))
        np.testing.assert_allclose(qnn.predict_probs(x).numpy(), qnn(x).numpy(), atol=2e-6)


def test_amplitude_zero_record_and_zero_blocks_match_cirq() -> None:
    qnn, cfg = _model("tfq_packed", encoding="amplitude")
    x = random_inputs(cfg, 3)
    x[0] = 0.0  # prepares |000>
    x[1, :4] = 0.0  # a whole subtree of the state preparation is zero
    ref = cirq_expectations(qnn, x)
    np.testing.assert_allclose(qnn.expectations(tf.constant(x)).numpy(), ref, atol=1e-5)
    probs = qnn.predict_probs(tf.constant(x)).numpy()
    np.testing.assert_allclose(probs, qnn(tf.constant(x)).numpy(), atol=2e-6)


@pytest.mark.parametrize(
    "kw", [{"encoding": "angle", "layers": 3}, {"encoding": "amplitude", "layers": 1}], ids=["angle", "amplitude"]
)
def test_eight_qubits_match_cirq_and_plain(kw: dict) -> None:
    fast, cfg = _model("tfq_packed", n_qubits=8, **kw)
    plain, _ = _model("tfq", n_qubits=8, **kw)
    x = random_inputs(cfg, 2)
    np.testing.assert_allclose(fast.expectations(tf.constant(x)).numpy(), cirq_expectations(fast, x), atol=1e-5)
    gx_fast, gv_fast = _loss_gradients(fast, x)
    gx_plain, gv_plain = _loss_gradients(plain, x)
    np.testing.assert_allclose(gx_fast, gx_plain, atol=1e-4)
    for a, b in zip(gv_fast, gv_plain, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    np.testing.assert_allclose(fast.predict_probs(tf.constant(x)).numpy(), plain(tf.constant(x)).numpy(), atol=2e-6)


def test_first_use_inside_tf_function_and_batch_sizes_retrace() -> None:
    fast, cfg = _model("tfq_packed", reupload=True)
    plain, _ = _model("tfq", reupload=True)

    def grads(qnn):
        @tf.function(reduce_retracing=True)
        def step(xb: tf.Tensor) -> list[tf.Tensor]:
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(qnn(xb)[:, 0])
            return tape.gradient(loss, qnn.trainable_variables)

        return [[g.numpy() for g in step(tf.constant(random_inputs(cfg, n, seed=n)))] for n in (32, 7, 33)]

    for got, want in zip(grads(fast), grads(plain), strict=True):
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4)


def test_rules_and_fallback_for_large_registers() -> None:
    assert packed.packing_ancillas(10, ANGLE) == packed.MAX_ANCILLAS
    assert packed.packing_ancillas(11, ANGLE) == 0 and packed.packing_ancillas(12, AMPLITUDE) == 0
    assert not packed.unitary_forward(8, ANGLE, True, training=False)  # re-uploading
    assert packed.unitary_forward(8, AMPLITUDE, False, training=True)
    assert not packed.unitary_forward(8, ANGLE, False, training=True)
    qnn, cfg = _model("tfq_packed", n_qubits=11, layers=1)
    assert qnn.backend.name == "tfq"  # too large to pack: the plain backend
    x = random_inputs(cfg, 2)
    np.testing.assert_allclose(qnn.expectations(tf.constant(x)).numpy(), cirq_expectations(qnn, x), atol=1e-5)
    np.testing.assert_allclose(qnn.predict_probs(tf.constant(x)).numpy(), qnn(tf.constant(x)).numpy(), atol=1e-6)


def test_packed_circuit_structure_and_public_circuit_unchanged() -> None:
    circuit, syms = packed.packed_circuit(3, 2, "angle", True, 2)
    assert len(syms) == 4 and [str(s) for s in syms[3][:2]] == ["p3_x_0_0", "p3_x_0_1"]
    controlled = [op for op in circuit.all_operations() if isinstance(op, cirq.ControlledOperation)]
    assert len(controlled) == 4 * 3 * 2  # R records x n qubits x layers (re-uploading)
    fast, _ = _model("tfq_packed", reupload=True)
    plain, _ = _model("tfq", reupload=True)
    assert fast.circuit == plain.circuit and len(fast.circuit.all_qubits()) == 3
    assert [str(s) for s in fast.input_symbols][:2] == ["x_0_0", "x_0_1"]
