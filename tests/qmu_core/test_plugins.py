"""Plug-ins (`qmu_core.plugins`): lookup by registered name only, the model contract, the example plug-in."""

from __future__ import annotations

import json
import sys
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import cirq
import numpy as np
import pytest
import sympy
from pydantic import ValidationError

from qmu_core import plugins
from qmu_core.config import ModelConfig, preset
from qmu_core.config.model import MODEL_KINDS
from qmu_core.config.overrides import load_config_file
from qmu_core.errors import ConfigError
from qmu_core.plugins import MODELS, CircuitModel

PLUGIN = "reupload_ring"
PLUGIN_MODULE = "qmu_reupload_plugin"
CANARY = "qmu_canary_mod"

needs_example = pytest.mark.skipif(
    PLUGIN not in plugins.installed(MODELS),
    reason="pip install -e examples/reupload_plugin --no-deps (the example model plug-in) first",
)


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module that nothing may import: importing it would show in `sys.modules`."""
    (tmp_path / f"{CANARY}.py").write_text("def boom(*args, **kwargs):\n    raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(CANARY, None)
    return CANARY


@pytest.fixture
def fake_group(monkeypatch: pytest.MonkeyPatch, canary: str) -> None:
    """`qmu.models` holds the canary as ``canary_model`` and an entry point with an invalid name."""
    eps = [
        EntryPoint(name="canary_model", value=f"{canary}:boom", group=MODELS),
        EntryPoint(name="Bad-Name", value=f"{canary}:boom", group=MODELS),
    ]

    def entry_points(*, group: str) -> list[EntryPoint]:
        return [ep for ep in eps if ep.group == group]

    monkeypatch.setattr(plugins, "entry_points", entry_points)


# ------------------------------------------------------------------ the registry


@needs_example
def test_listing_reads_metadata_only_and_loading_imports_by_name() -> None:
    saved = sys.modules.pop(PLUGIN_MODULE, None)
    try:
        assert PLUGIN in plugins.installed(MODELS)
        assert PLUGIN in MODEL_KINDS and plugins.is_model_plugin(PLUGIN) and not plugins.is_model_plugin("hqnn")
        ModelConfig(kind=PLUGIN)  # validation reads the name only
        assert PLUGIN_MODULE not in sys.modules
        factory = plugins.load(MODELS, PLUGIN)
        assert PLUGIN_MODULE in sys.modules and callable(factory)
    finally:
        if saved is not None:
            sys.modules[PLUGIN_MODULE] = saved


def test_fake_group_lists_valid_names_and_loads_only_registered_ones(fake_group: None, canary: str) -> None:
    assert plugins.installed(MODELS) == ("canary_model",)  # "Bad-Name" is never listed
    assert canary not in sys.modules
    with pytest.raises(ConfigError, match="installed: canary_model"):
        plugins.load(MODELS, "Bad-Name")
    assert canary not in sys.modules
    assert plugins.load(MODELS, "canary_model").__module__ == canary  # the registered name imports it


@pytest.mark.parametrize("name", ["os:system", "os.path:join", "../x", "evil", CANARY, f"{CANARY}:boom", "", 3, None])
@pytest.mark.parametrize("group", plugins.GROUPS)
def test_anything_but_an_installed_name_is_refused_without_importing(canary: str, name: Any, group: str) -> None:
    before = set(sys.modules)
    with pytest.raises(ConfigError, match="No module path is ever imported") as err:
        plugins.load(group, name)
    assert "installed:" in str(err.value)
    assert canary not in sys.modules and set(sys.modules) == before


def test_a_name_registered_twice_is_refused_without_importing(monkeypatch: pytest.MonkeyPatch, canary: str) -> None:
    eps = [EntryPoint(name="twin", value=f"{canary}:boom", group=MODELS), EntryPoint("twin", "os:system", MODELS)]
    monkeypatch.setattr(plugins, "entry_points", lambda *, group: eps)
    assert plugins.installed(MODELS) == ("twin",)
    with pytest.raises(ConfigError, match="Several installed packages register the plug-in 'twin'"):
        plugins.load(MODELS, "twin")
    assert canary not in sys.modules


def test_an_unknown_group_is_refused() -> None:
    with pytest.raises(ConfigError, match="Unknown plug-in group"):
        plugins.installed("qmu.evil")


@pytest.mark.parametrize("kind", ["os:system", "os.path:join", "../x", "evil", CANARY])
def test_an_unknown_kind_fails_validation_without_importing(canary: str, kind: str, tmp_path: Path) -> None:
    before = set(sys.modules)
    with pytest.raises(ValidationError, match="Input should be 'basic_qnn', 'hqnn'"):
        ModelConfig.model_validate({"kind": kind})  # a config dict
    with pytest.raises(ConfigError, match="model.kind"):
        preset("tiny", model={"kind": kind})  # the whole config, as a flow or the form validates it
    path = tmp_path / "config.json"  # a --config file
    path.write_text(json.dumps({"preset": "tiny", "model": {"kind": kind}}))
    with pytest.raises(ValidationError):
        ModelConfig.model_validate(load_config_file(path)["model"])
    with pytest.raises(ValidationError):  # an artifact's recorded config (JSON in its provenance)
        ModelConfig.model_validate_json(json.dumps({**ModelConfig().model_dump(mode="json"), "kind": kind}))
    assert canary not in sys.modules and set(sys.modules) == before


@needs_example
def test_a_recorded_kind_no_longer_installed_is_refused_without_importing(
    monkeypatch: pytest.MonkeyPatch, canary: str
) -> None:
    """A config recorded where the plug-in was installed, read where it is not: nothing is imported."""
    cfg = ModelConfig(kind=PLUGIN, n_qubits=3, layers=1)  # validated while installed (the Literal is fixed at import)
    monkeypatch.setattr(plugins, "entry_points", lambda *, group: [])
    plugins._BUILT.clear()
    saved = sys.modules.pop(PLUGIN_MODULE, None)
    try:
        with pytest.raises(ConfigError, match="No installed package registers a plug-in 'reupload_ring'"):
            cfg.feature_spec  # noqa: B018 - the property loads the plug-in
        assert PLUGIN_MODULE not in sys.modules
    finally:
        plugins._BUILT.clear()
        if saved is not None:
            sys.modules[PLUGIN_MODULE] = saved


# ------------------------------------------------------------------ the model contract


def _good() -> CircuitModel:
    q = cirq.LineQubit.range(2)
    x, w = sympy.Symbol("x"), sympy.Symbol("w")
    circuit = cirq.Circuit(cirq.ry(x).on(q[0]), cirq.rz(w).on(q[1]), cirq.CZ(*q))
    return CircuitModel(circuit=circuit, input_symbols=(x,), weight_symbols=(w,), readout=(cirq.Z(q[0]),))


def test_validate_accepts_a_well_formed_model() -> None:
    assert plugins.validate("mine", _good()) == _good()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"circuit": "H 0"}, "must be a cirq.Circuit"),
        ({"input_symbols": [sympy.Symbol("x")]}, "`input_symbols` must be a tuple"),
        ({"input_symbols": ("x",)}, "sympy.Symbol s only"),
        ({"input_symbols": ()}, "no input symbols"),
        ({"weight_symbols": (sympy.Symbol("x"), sympy.Symbol("w"))}, "both inputs and weights"),
        ({"weight_symbols": (sympy.Symbol("w"), sympy.Symbol("v"))}, r"\['v'\] do not occur in the circuit"),
        ({"weight_symbols": ()}, r"reads symbols \['w'\] that are neither"),
        ({"readout": ()}, "`readout` is empty"),
        ({"readout": (cirq.Z(cirq.LineQubit(0)).with_coefficient(1), "Z0")}, "not a cirq.PauliString"),
        ({"readout": (cirq.Z(cirq.LineQubit(5)),)}, "qubits the circuit does not act on"),
    ],
)
def test_validate_names_the_plugin_and_the_fault(change: dict[str, Any], message: str) -> None:
    good = _good()
    bad = CircuitModel(**{**good.__dict__, **change})
    with pytest.raises(ConfigError, match=rf"Model plug-in 'mine' returned an unusable model: .*{message}"):
        plugins.validate("mine", bad)


def test_validate_refuses_other_qubits_and_wide_circuits() -> None:
    with pytest.raises(ConfigError, match="expected a qmu_core.plugins.CircuitModel, got tuple"):
        plugins.validate("mine", (1, 2))
    good = _good()
    grid = good.circuit.transform_qubits(lambda q: cirq.GridQubit(0, q.x))  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="LineQubit"):
        plugins.validate("mine", CircuitModel(**{**good.__dict__, "circuit": grid}))
    wide = good.circuit + cirq.Circuit(cirq.X(q) for q in cirq.LineQubit.range(17))
    with pytest.raises(ConfigError, match="acts on 17 qubits"):
        plugins.validate("mine", CircuitModel(**{**good.__dict__, "circuit": wide}))


# ------------------------------------------------------------------ the example plug-in through the QNN


@needs_example
def test_plugin_config_rules() -> None:
    cfg = ModelConfig(kind=PLUGIN, n_qubits=3, layers=2)
    assert cfg.is_plugin and cfg.feature_spec.n_components == 3 and cfg.feature_spec.encoding == "angle"
    with pytest.raises(ValidationError, match="needs model.encoding='angle' and model.reupload=false"):
        ModelConfig(kind=PLUGIN, encoding="amplitude", n_qubits=3)
    with pytest.raises(ValidationError, match="needs model.encoding='angle' and model.reupload=false"):
        ModelConfig(kind=PLUGIN, reupload=True)
    from qmu_core.qnn.backends import PluginTFQBackend, make_backend

    assert isinstance(make_backend(cfg), PluginTFQBackend)
    with pytest.raises(ConfigError, match="not on the 'dense' backend"):
        make_backend(cfg, "dense")


def _simulated(built: CircuitModel, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """Every read-out's expectation per record from `cirq.Simulator` (complex64 state vectors)."""
    qs = sorted(built.circuit.all_qubits())
    index = {q: i for i, q in enumerate(qs)}
    sim = cirq.Simulator()
    rows = []
    for record in x:
        values = {**dict(zip(map(str, built.input_symbols), record, strict=True))}
        values |= dict(zip(map(str, built.weight_symbols), theta, strict=True))
        state = sim.simulate(built.circuit, param_resolver=cirq.ParamResolver(values), qubit_order=qs)
        psi = state.final_state_vector
        rows.append([op.expectation_from_state_vector(psi, index).real for op in built.readout])
    return np.array(rows)


@needs_example
def test_example_plugin_through_the_qnn_equals_cirq_simulator() -> None:
    from qmu_core._tf import tf
    from qmu_core.qnn.models import QNN

    cfg = ModelConfig(kind=PLUGIN, n_qubits=3, layers=2)
    qnn = QNN(cfg, n_classes=3, image_side=8, seed=7)
    built = plugins.circuit_model(cfg)
    assert len(built.readout) == 4 and len(built.weight_symbols) == 12
    assert tuple(qnn.variables["head_w"].shape) == (4, 3)  # one head row per read-out
    x = np.random.default_rng(1).uniform(0, np.pi, (6, 3)).astype(np.float32)
    expected = _simulated(built, x, qnn.variables["theta"].numpy())
    np.testing.assert_allclose(qnn.predict_expectations(x).numpy(), expected, atol=2e-5)
    np.testing.assert_allclose(qnn.expectations(tf.constant(x)).numpy(), expected, atol=2e-5)

    # the adjoint gradient of one read-out with respect to a weight used once, against central differences
    theta = qnn.variables["theta"]
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(qnn.expectations(tf.constant(x))[:, 3])
    grad = tape.gradient(total, theta).numpy()
    k, eps = 5, 1e-2
    shifted = []
    for sign in (1, -1):
        t = theta.numpy().copy()
        t[k] += sign * eps
        shifted.append(_simulated(built, x, t)[:, 3].sum())
    assert grad[k] == pytest.approx((shifted[0] - shifted[1]) / (2 * eps), abs=1e-3)


@needs_example
def test_stacked_plugin_models_equal_single_ones() -> None:
    """Model-batched training (`QNNStack`, the reference models' route) runs plug-in models too."""
    from qmu_core._tf import tf
    from qmu_core.qnn.stacked import QNNStack

    cfg = ModelConfig(kind=PLUGIN, n_qubits=2, layers=2)
    stack = QNNStack(cfg, n_classes=2, image_side=8, seeds=[3, 4])
    x = np.random.default_rng(2).uniform(0, np.pi, (2, 5, 2)).astype(np.float32)
    probs = stack(tf.constant(x)).numpy()
    for m in range(2):
        np.testing.assert_allclose(probs[m], stack.model(m).predict_probs(x[m]).numpy(), atol=1e-6)


@needs_example
def test_plugin_stage_keys_follow_what_the_plugin_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model stages' keys hash the plug-in's circuit: a changed circuit is never served from the cache."""
    from qmu_core.artifacts import ArtifactRef
    from qmu_core.config import TrainConfig
    from tasks import train_model

    cfg = ModelConfig(kind=PLUGIN, n_qubits=3, layers=2)
    assert plugins.fingerprint(cfg) == plugins.fingerprint(ModelConfig(kind=PLUGIN, n_qubits=3, layers=2))
    assert plugins.fingerprint(cfg) != plugins.fingerprint(ModelConfig(kind=PLUGIN, n_qubits=3, layers=3))
    splits = ArtifactRef(stage="splits", key="splits-v1-0123", root="/tmp/nowhere")

    def key(model: ModelConfig) -> str:
        ref = train_model.plan(splits=splits, model=model, train=TrainConfig(), classes=(0, 1), which="target", seed=0)
        return ref.key

    first = key(cfg)
    builtin = key(ModelConfig())
    monkeypatch.setattr(plugins, "fingerprint", lambda model: "another circuit")
    assert key(cfg) != first
    assert key(ModelConfig()) == builtin  # built-in models' keys do not involve plug-ins
