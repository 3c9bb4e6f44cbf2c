"""Selective synaptic dampening and the QFI importance against independent references."""

from __future__ import annotations

import cirq
import numpy as np
import pytest

from qmu_core._tf import tf
from qmu_core.config import ModelConfig, TrainConfig, UnlearnConfig
from qmu_core.errors import ConfigError
from qmu_core.qnn import circuits
from qmu_core.qnn.models import QNN, build_model
from qmu_core.qnn.training import fit
from qmu_core.unlearning.base import Evals, Request, accuracy, forget_state
from qmu_core.unlearning.importance import batch_fisher
from qmu_core.unlearning.qfi import qfi_diagonal
from qmu_core.unlearning.ssd import SelectiveSynapticDampening, dampen
from tests.support import case_id, random_inputs, resolve

QFI_CASES = [
    {"encoding": "angle"},
    {"encoding": "amplitude"},
    {"kind": "hqnn", "encoding": "amplitude", "layers": 1},
    {"kind": "hqnn", "encoding": "angle", "layers": 1},
]


def _model(seed: int = 0, n_classes: int = 4, **kw: object) -> tuple[QNN, ModelConfig]:
    cfg = ModelConfig(**({"n_qubits": 3, "layers": 2} | kw))
    return build_model(cfg, n_classes=n_classes, image_side=8, seed=seed), cfg


def _copy(model: QNN) -> QNN:
    clone = build_model(model.cfg, n_classes=model.n_classes, image_side=model.image_side, seed=0)
    for k, v in model.variables.items():
        clone.variables[k].assign(v)
    return clone


def _weights(model: QNN) -> dict[str, np.ndarray]:
    return {k: v.numpy().copy() for k, v in model.variables.items()}


def _ssd(alpha: float, lam: float, importance: str = "fisher") -> SelectiveSynapticDampening:
    unlearn = UnlearnConfig(ssd_alpha=alpha, ssd_lambda=lam, ssd_importance=importance)
    return SelectiveSynapticDampening(unlearn, TrainConfig())


# ---------------------------------------------------------------------------- the rule itself


def test_dampen_rule_on_hand_made_arrays() -> None:
    w = np.array([1.5, -2.0, 3.0, 0.7, -0.3, 4.0, 2.5], np.float32)
    i_d = np.array([1.0, 1.0, 1.0, 2.0, 0.0, 0.0, 0.5])
    i_u = np.array([1.0, 2.0, 2.1, 10.0, 3.0, 0.0, 5.0])
    new, mask = dampen(w, i_d, i_u, alpha=2.0, lam=3.0)
    # ratio I_U/I_D: 1 (kept), 2 = alpha (kept: strict >), 2.1 (beta = min(3/2.1, 1) = 1), 5 (beta 0.6),
    # inf (I_D = 0 < I_U: beta 0), 0/0 (kept), 10 (beta 0.3)
    np.testing.assert_array_equal(mask, [False, False, True, True, True, False, True])
    scaled = [np.float32(np.float64(w[3]) * (3.0 * 2.0 / 10.0)), np.float32(np.float64(w[6]) * (3.0 * 0.5 / 5.0))]
    expected = np.array([1.5, -2.0, 3.0, scaled[0], 0.0, 4.0, scaled[1]], np.float32)
    np.testing.assert_array_equal(new, expected)
    assert new.dtype == np.float32
    assert np.array_equal(new[~mask].view(np.uint32), w[~mask].view(np.uint32))  # bit-identical

    for bad in (np.array([1.0, -1e-3]), np.array([np.nan, 1.0])):
        with pytest.raises(ValueError, match="non-negative"):
            dampen(w[:2], bad, np.ones(2), 1.0, 1.0)
    with pytest.raises(ValueError, match="equal shapes"):
        dampen(w, i_d[:3], i_u[:3], 1.0, 1.0)


# ---------------------------------------------------------------------------- end to end


def _request(model_cfg: ModelConfig, n_forget: int = 4, n_retain: int = 8) -> Request:
    x = random_inputs(model_cfg, n_forget + n_retain, seed=3)
    y = np.random.default_rng(4).integers(0, 4, size=len(x)).astype(np.int32)
    return Request("samples", x[:n_forget], y[:n_forget], x[n_forget:], y[n_forget:], stop_acc=0.25)


@pytest.mark.parametrize(
    ("kw", "importance"),
    [
        ({"encoding": "angle"}, "fisher"),
        ({"encoding": "angle"}, "qfi"),
        ({"kind": "hqnn", "encoding": "amplitude", "layers": 1}, "qfi"),
    ],
    ids=["angle-fisher", "angle-qfi", "hqnn-amplitude-qfi"],
)
def test_ssd_dampens_exactly_the_selected_parameters(kw: dict, importance: str) -> None:
    model, cfg = _model(**kw)
    request = _request(cfg)
    before = _weights(model)

    # Independent importances on a copy: batch Fisher on D = U + R then on U, in the order SSD draws
    # them from its seed; the QFI as the direct per-record mean over D and over U.
    ref = _copy(model)
    x_all = np.concatenate([request.x_forget, request.x_retain])
    y_all = np.concatenate([request.y_forget, request.y_retain])
    rng = np.random.default_rng(0)
    i_d = batch_fisher(ref, x_all, y_all, Evals(), batch_size=32, rng=rng)
    i_u = batch_fisher(ref, request.x_forget, request.y_forget, Evals(), batch_size=32, rng=rng)
    if importance == "qfi":
        i_d["theta"] = qfi_diagonal(ref, x_all, Evals())
        i_u["theta"] = qfi_diagonal(ref, request.x_forget, Evals())
    ratios = np.concatenate([(i_u[k] / i_d[k]).ravel() for k in sorted(i_d)])
    # alpha halfway between two neighbouring ratios (no parameter near the threshold), ~1/3 selected;
    # lambda so that some selected parameters are scaled by beta < 1 and some have beta = 1.
    r = np.unique(ratios[np.isfinite(ratios)])
    cut = int(len(r) * 2 / 3)
    alpha = float((r[cut - 1] + r[cut]) / 2)
    lam = float(np.median(r[cut:]))

    seen: list[tuple[int, int, dict]] = []
    result = _ssd(alpha, lam, importance).run(model, request, seed=0, progress=lambda *a: seen.append(a))
    after = _weights(model)

    n_dampened, n_beta_lt_1 = 0, 0
    for k in before:
        mask = i_u[k] > alpha * i_d[k]
        beta = np.ones_like(i_u[k])
        beta[mask] = np.minimum(lam * i_d[k][mask] / i_u[k][mask], 1.0)
        assert np.array_equal(after[k][~mask].view(np.uint32), before[k][~mask].view(np.uint32)), k
        # The method's I_D is the size-weighted mean of the means over U and R: equal up to rounding.
        np.testing.assert_allclose(after[k][mask], before[k][mask] * beta[mask], rtol=1e-6, err_msg=k)
        n_dampened += int(mask.sum())
        n_beta_lt_1 += int((beta[mask] < 1).sum())
    n_params = sum(v.size for v in before.values())
    assert 0 < n_dampened < n_params and 0 < n_beta_lt_1 < n_dampened
    assert result.extra == {"dampened": n_dampened, "params": n_params}
    assert f"dampened {n_dampened} of {n_params} parameters" in result.note

    acc = accuracy(model, request.x_forget, request.y_forget, Evals())
    state = forget_state(model, request, Evals())
    assert state["forget_acc"] == acc
    assert result.history == [{**state, "dampened": float(n_dampened)}]
    assert seen == [(1, 1, result.history[0])]
    assert result.reached_stop == (acc <= request.stop_acc)
    n_u, n_d = len(request.x_forget), len(x_all)
    # Fisher gradients (2 each) on D and U, the QFI's forward sweeps on U and R, the accuracy on U.
    assert result.circuit_evals == 2 * (n_d + n_u) + (n_d if importance == "qfi" else 0) + n_u


def test_qfi_needs_reupload_off() -> None:
    model, cfg = _model(reupload=True)
    with pytest.raises(ConfigError, match="ssd_importance=fisher"):
        qfi_diagonal(model, random_inputs(cfg, 2), Evals())
    with pytest.raises(ConfigError, match="reupload=false"):
        _ssd(2.0, 1.0, "qfi").run(model, _request(cfg), seed=0)


# ---------------------------------------------------------------------------- QFI reference


def _cirq_qfi(model: QNN, x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Per-record QFI diagonal from cirq.Simulator states (complex128) and central differences in theta."""
    values = model.backend.symbol_values(model.front_end(tf.constant(x))).numpy().astype(np.float64)
    theta = model.variables["theta"].numpy().astype(np.float64)
    names = [str(s) for s in model.input_symbols] + [str(s) for s in model.weight_symbols]
    qs, sim = circuits.qubits(model.cfg.n_qubits), cirq.Simulator(dtype=np.complex128)

    def state(row: np.ndarray, th: np.ndarray) -> np.ndarray:
        circuit = resolve(model.circuit, dict(zip(names, [*row, *th], strict=True)))
        return sim.simulate(circuit, qubit_order=qs).final_state_vector

    out = np.zeros((len(x), len(theta)))
    for r, row in enumerate(values):
        psi = state(row, theta)
        for k in range(len(theta)):
            step = np.zeros_like(theta)
            step[k] = h
            d = (state(row, theta + step) - state(row, theta - step)) / (2 * h)
            out[r, k] = 4 * (np.vdot(d, d).real - abs(np.vdot(psi, d)) ** 2)
    return out


@pytest.mark.parametrize("kw", QFI_CASES, ids=case_id)
def test_qfi_diagonal_equals_cirq_finite_differences(kw: dict) -> None:
    model, cfg = _model(seed=5, **kw)
    model.variables["theta"].assign(np.random.default_rng(6).uniform(-np.pi, np.pi, model.variables["theta"].shape))
    x = random_inputs(cfg, 3, seed=7)
    evals = Evals()
    got = qfi_diagonal(model, x, evals)
    per_record = _cirq_qfi(model, x)
    # Tolerance: the reference is complex128 with h = 1e-5 (truncation ~h^2, rounding ~1e-16/h: ~1e-10);
    # both sides start from float32 inputs/encodings (the HQNN's CNN features, amplitude_states'
    # float32 output), whose ~1e-7 relative error moves F by ~1e-7. Observed: < 1e-7.
    np.testing.assert_allclose(got, per_record.mean(axis=0), atol=1e-6)
    assert evals.count == len(x)  # one forward state-vector sweep per record
    assert got.max() > 0.1  # not trivially zero


def test_qfi_scale_of_each_rotation_parameter() -> None:
    """Weights are radians: F(w1), F(w2) in [0, 1]; F(w0) in [0, 4 sin^2(w1/2)] (qfi module doc)."""
    model, cfg = _model(seed=1, n_qubits=3, layers=3)
    theta = np.random.default_rng(2).uniform(-np.pi, np.pi, model.variables["theta"].shape)
    model.variables["theta"].assign(theta)
    w = theta.reshape(3, 3, 3)
    for row in random_inputs(cfg, 6, seed=8):
        f = qfi_diagonal(model, row[None], Evals()).reshape(3, 3, 3)
        assert f.min() >= 0
        assert f[..., 1:].max() <= 1 + 1e-9
        assert np.all(f[..., 0] <= 4 * np.sin(w[..., 1] / 2) ** 2 + 1e-6)

    # Extremes: input |+>^n (x = pi/2), w1 = pi in layer 0. Then the w0 generator on qubit q is Z of
    # the input (variance 1 in |+>): F = 4, above the [0, 1] of a Pauli-rotation generator P/2.
    theta = np.zeros((3, 3, 3))
    theta[0, :, 1] = np.pi
    model.variables["theta"].assign(theta.reshape(-1))
    f = qfi_diagonal(model, np.full((1, 3), np.pi / 2, np.float32), Evals()).reshape(3, 3, 3)
    np.testing.assert_allclose(f[0, :, 0], 4.0, atol=1e-6)
    # w2 after PhasedX(0, pi) on |+>: the state is |+> up to phase, <Z> = 0, F = 1 - <Z>^2 = 1.
    np.testing.assert_allclose(f[0, :, 2], 1.0, atol=1e-6)


# ---------------------------------------------------------------------------- a trained model


@pytest.fixture(scope="module")
def trained() -> tuple[QNN, Request]:
    """3 well-separated classes of angle features; forget class 0 (a third of the training set)."""
    rng = np.random.default_rng(0)
    centers = np.array([[0.4, 0.4, 0.4], [2.7, 0.4, 2.7], [0.4, 2.7, 1.6]])
    y = np.repeat(np.arange(3), 20).astype(np.int32)
    x = (centers[y] + rng.normal(0, 0.15, (len(y), 3))).clip(0, np.pi).astype(np.float32)
    model, _ = _model(n_classes=3)
    fit(model, x, y, TrainConfig(epochs=15, batch_size=10, learning_rate=0.1), seed=0)
    forget = y == 0
    return model, Request("class", x[forget], y[forget], x[~forget], y[~forget], stop_acc=0.05)


def test_ssd_forgets_a_class_of_a_trained_model(trained: tuple[QNN, Request]) -> None:
    base, request = trained
    assert accuracy(base, request.x_forget, request.y_forget, Evals()) == 1.0
    model = _copy(base)
    before = _weights(model)
    result = _ssd(alpha=1.5, lam=0.1).run(model, request, seed=0)
    after = _weights(model)
    changed = sum(int((after[k] != before[k]).sum()) for k in before)
    assert 0 < changed <= result.extra["dampened"] < result.extra["params"]
    assert all(np.all(np.abs(after[k]) <= np.abs(before[k])) for k in before)  # dampening only shrinks
    # The forget class is no longer recognised (observed: 1.0 -> 0.0).
    assert result.history[0]["forget_acc"] <= 0.25
    assert result.reached_stop == (result.history[0]["forget_acc"] <= 0.05)
