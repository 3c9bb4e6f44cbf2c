"""Attack and unlearning plug-ins (`qmu_core.attacks.plugin`, `qmu_core.unlearning.plugin`): names, contract, keys.

The example package (`examples/reupload_plugin`) registers the attack ``margin`` and the method
``random_label``; the pipeline runs them in tests/flows/test_plugin_pipeline.py. Here: what a config
accepts, what is refused without importing anything, what a broken plug-in's error says, and that
their stages' keys follow the plug-in's identity.
"""

from __future__ import annotations

import json
import sys
import textwrap
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from qmu_core import plugins
from qmu_core.attacks.base import Observations, Reference
from qmu_core.config import AttackConfig, TrainConfig, UnlearnConfig, preset
from qmu_core.errors import ConfigError

ATTACK, METHOD, PLUGIN_MODULE = "margin", "random_label", "qmu_reupload_plugin"
CANARY = "qmu_canary_groups"
FAKE = "qmu_fake_group_plugins"

needs_example = pytest.mark.skipif(
    ATTACK not in plugins.installed(plugins.ATTACKS) or METHOD not in plugins.installed(plugins.UNLEARNING),
    reason="pip install -e examples/reupload_plugin --no-deps (the example plug-ins) first",
)


@pytest.fixture
def canary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An importable module that nothing may import: importing it would show in `sys.modules`."""
    (tmp_path / f"{CANARY}.py").write_text("def boom(*args, **kwargs):\n    raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(CANARY, None)
    return CANARY


# ------------------------------------------------------------------ names in a config

BAD_NAMES = ["os:system", "os.path:join", "qmu_core.plugins:load", "../x", CANARY, f"{CANARY}:boom", "Margin"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_config_naming_anything_but_an_installed_plugin_is_refused_without_importing(
    canary: str, name: str, tmp_path: Path
) -> None:
    before = set(sys.modules)
    with pytest.raises(ConfigError, match=r"attack\.plugins\.0"):
        preset("tiny", attack={"plugins": [name]})  # a flow, the CLI and the form validate the whole config
    with pytest.raises(ConfigError, match=r"unlearn\.methods\.0") as err:
        preset("tiny", unlearn={"methods": [name]})
    assert name in str(err.value) or json.dumps(name) in str(err.value)
    with pytest.raises(ValidationError):  # an artifact's recorded section (JSON in its provenance)
        AttackConfig.model_validate_json(json.dumps({"plugins": [name]}))
    with pytest.raises(ValidationError):
        UnlearnConfig.model_validate_json(json.dumps({"methods": [name]}))
    with pytest.raises(ValidationError):  # the headline names an attack too
        AttackConfig.model_validate({"headline": name})
    assert canary not in sys.modules and set(sys.modules) == before


def test_with_no_attack_plugin_installed_the_field_refuses_every_name() -> None:
    """What an ``attack.plugins`` entry is where no package registers an attack (and where one does)."""
    from pydantic import TypeAdapter

    from qmu_core.config.attack import plugin_choice

    none = TypeAdapter(plugin_choice(()))
    with pytest.raises(ValidationError, match="no attack plug-in is installed .* Install the package that registers"):
        none.validate_python("os:system")
    assert none.json_schema() == {"type": "string", "enum": []}
    one = TypeAdapter(plugin_choice(("mine",)))
    assert one.validate_python("mine") == "mine" and one.json_schema() == {"type": "string", "enum": ["mine"]}
    with pytest.raises(ValidationError, match="Input should be 'mine'"):
        one.validate_python("os:system")


@needs_example
def test_installed_names_are_choices_of_the_form_and_read_metadata_only() -> None:
    saved = sys.modules.pop(PLUGIN_MODULE, None)
    try:
        cfg = preset("tiny", attack={"plugins": [ATTACK], "headline": ATTACK}, unlearn={"methods": ["ga", METHOD]})
        assert cfg.attack.plugins == (ATTACK,) and cfg.unlearn.methods == ("ga", METHOD)
        assert PLUGIN_MODULE not in sys.modules  # validating names imports nothing
        schema = AttackConfig.model_json_schema()
        assert ATTACK in schema["properties"]["plugins"]["items"]["enum"]  # the Prefect form's choices
        assert METHOD in UnlearnConfig.model_json_schema()["properties"]["methods"]["items"]["enum"]
    finally:
        if saved is not None:
            sys.modules[PLUGIN_MODULE] = saved


@needs_example
def test_a_plugin_headline_must_run_and_the_built_in_keys_stay() -> None:
    with pytest.raises(ValidationError, match=r"attack\.headline='margin' is an attack plug-in that attack\.plugins"):
        AttackConfig(headline=ATTACK)
    with pytest.raises(ValidationError, match="lists a plug-in twice"):
        AttackConfig(plugins=(ATTACK, ATTACK))
    assert "plugins" not in AttackConfig().model_dump()  # no plug-in: the section dumps (and keys) as before
    assert AttackConfig(plugins=(ATTACK,)).model_dump()["plugins"] == (ATTACK,)
    # a plug-in method's stage reads the whole unlearn section; a built-in's only its own fields
    cfg = UnlearnConfig(methods=("ga", METHOD), ssd_alpha=3.0)
    assert cfg.for_stage(METHOD).ssd_alpha == 3.0 and cfg.for_stage(METHOD).methods == (METHOD,)
    assert cfg.for_stage("ga").ssd_alpha == UnlearnConfig().ssd_alpha


# ------------------------------------------------------------------ identity and stage keys


@needs_example
def test_identity_reads_source_without_importing_and_refuses_module_paths(canary: str) -> None:
    saved = sys.modules.pop(PLUGIN_MODULE, None)
    try:
        first = plugins.identity(plugins.ATTACKS, ATTACK)
        assert len(first) == 64 and first != plugins.identity(plugins.UNLEARNING, METHOD)
        assert PLUGIN_MODULE not in sys.modules
    finally:
        if saved is not None:
            sys.modules[PLUGIN_MODULE] = saved
    for name in ("os:system", f"{canary}:boom"):
        with pytest.raises(ConfigError, match="No module path is ever imported"):
            plugins.identity(plugins.UNLEARNING, name)
    assert canary not in sys.modules


def test_identity_follows_the_plugins_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Editing any source file of the plug-in's package gives it another identity (read, never imported)."""
    package = tmp_path / "qmu_fake_identity"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "attack.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = EntryPoint(name="mine", value="qmu_fake_identity.attack:Mine", group=plugins.ATTACKS)
    monkeypatch.setattr(plugins, "entry_points", lambda *, group: [ep] if group == plugins.ATTACKS else [])
    monkeypatch.setattr(plugins, "_IDENTITIES", {})
    first = plugins.identity(plugins.ATTACKS, "mine")
    (package / "helpers.py").write_text("X = 1\n")
    plugins._IDENTITIES.clear()
    assert plugins.identity(plugins.ATTACKS, "mine") != first
    assert "qmu_fake_identity" not in sys.modules and "qmu_fake_identity.attack" not in sys.modules


@needs_example
def test_stage_keys_follow_the_plugins_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    from qmu_core.artifacts import ArtifactRef
    from qmu_core.config import ModelConfig
    from tasks import audit_models, unlearn

    ref = ArtifactRef(stage="splits", key="splits-v1-0123", root="/tmp/nowhere")
    common: dict[str, Any] = {"splits": ref, "classes": (0, 1), "seed": 0}

    def unlearn_key(method: str) -> str:
        cfg = UnlearnConfig(methods=("ga", METHOD)).for_stage(method)
        plan = unlearn.plan(weights=ref, model=ModelConfig(), train=TrainConfig(), unlearn=cfg, method=method, **common)
        return plan.key

    def audit_key(attack: AttackConfig) -> str:
        return audit_models.plan(
            membership=ref, reference_outputs=[ref], audited={"before": ref}, attack=attack, **common
        ).key

    keys = (
        unlearn_key(METHOD),
        unlearn_key("ga"),
        audit_key(AttackConfig(plugins=(ATTACK,))),
        audit_key(AttackConfig()),
    )
    monkeypatch.setattr(plugins, "identity", lambda group, name: f"another version of {name}")
    assert unlearn_key(METHOD) != keys[0] and audit_key(AttackConfig(plugins=(ATTACK,))) != keys[2]
    assert unlearn_key("ga") == keys[1] and audit_key(AttackConfig()) == keys[3]  # built-ins: no plug-in involved


# ------------------------------------------------------------------ the contract, checked

FAKE_SOURCE = """
import numpy as np
from qmu_core.attacks.base import Attack

not_a_class = 3


class BadSupports(Attack):
    supports = frozenset({"telepathy"})
    def fit(self, reference): return self
    def score(self, target): return np.zeros(target.n_records)


class FitNone(Attack):
    def fit(self, reference): return None
    def score(self, target): return np.zeros(target.n_records)


class NoThreshold(Attack):
    def fit(self, reference): return self
    def score(self, target): return np.zeros(target.n_records)


class WrongShape(Attack):
    def fit(self, reference):
        self.threshold = 0.0
        return self
    def score(self, target): return np.zeros(3)


class NotFinite(WrongShape):
    def score(self, target): return np.full(target.n_records, np.nan)


class Raises(Attack):
    def fit(self, reference): raise RuntimeError("no reference models of mine")
    def score(self, target): return np.zeros(target.n_records)


class Good(WrongShape):
    def score(self, target): return target.probs[:, 0]
"""


@pytest.fixture
def fake_attacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`qmu.attacks` holds the plug-ins of `FAKE_SOURCE`, each under its lower-case class name."""
    (tmp_path / f"{FAKE}.py").write_text(textwrap.dedent(FAKE_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(FAKE, None)
    names = ["not_a_class", "BadSupports", "FitNone", "NoThreshold", "WrongShape", "NotFinite", "Raises", "Good"]
    eps = [EntryPoint(name=n.lower(), value=f"{FAKE}:{n}", group=plugins.ATTACKS) for n in names]
    monkeypatch.setattr(plugins, "entry_points", lambda *, group: [ep for ep in eps if ep.group == group])


def _reference() -> Reference:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet([1.0, 1.0], size=(2, 6))
    models = tuple(Observations("probs", np.zeros(6, np.int64), probs=p, correct=p[:, 0] > 0.5) for p in probs)
    membership = np.array([[1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 1]], bool)
    return Reference(models, membership, np.zeros(6, bool))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("not_a_class", "its entry point names 3, not a subclass of qmu_core.attacks.base.Attack"),
        ("badsupports", "`supports` must be a non-empty frozenset of probs, expectations, labels"),
        ("fitnone", "`fit` returned NoneType; return the fitted attack"),
        ("nothreshold", "after `fit` its threshold is nan; set a finite float"),
        ("wrongshape", r"`score` returned shape \(3,\) for 6 records"),
        ("notfinite", "`score` returned 6 non-finite scores"),
    ],
)
def test_a_broken_attack_plugin_is_named_with_its_fault_and_the_fix(
    fake_attacks: None, name: str, message: str
) -> None:
    from qmu_core.attacks.plugin import plugin_attack

    reference = _reference()
    with pytest.raises(ConfigError, match=rf"Attack plug-in '{name}' \(qmu.attacks\) is unusable: {message}") as err:
        plugin_attack(name, AttackConfig(), None, seed=0).fit(reference).score(reference.models[0])  # type: ignore[arg-type]
    assert "Fix the plug-in" in str(err.value) and "attack.plugins" in str(err.value)


def test_an_attack_plugin_that_raises_is_named_and_a_good_one_scores(fake_attacks: None) -> None:
    from qmu_core.attacks.plugin import plugin_attack

    reference = _reference()
    with pytest.raises(ConfigError, match=r"Plug-in 'raises' of qmu.attacks .* failed in fit: RuntimeError: no ref"):
        plugin_attack("raises", AttackConfig(), None, seed=0).fit(reference)  # type: ignore[arg-type]
    good = plugin_attack("good", AttackConfig(), None, seed=0).fit(reference)  # type: ignore[arg-type]
    np.testing.assert_array_equal(good.score(reference.models[1]), reference.models[1].probs[:, 0])  # type: ignore[index]
    assert good.threshold == 0.0 and good.applicable(reference) is None


@needs_example
def test_the_example_margin_attack_fits_and_scores() -> None:
    from qmu_core.attacks.plugin import plugin_attack

    reference = _reference()
    attack = plugin_attack(ATTACK, AttackConfig(plugins=(ATTACK,)), None, seed=0).fit(reference)  # type: ignore[arg-type]
    p = reference.models[0].probs
    assert p is not None
    np.testing.assert_allclose(attack.score(reference.models[0]), p[:, 0] - p[:, 1])
    labels = Reference(tuple(Observations("labels", o.label, correct=o.correct) for o in reference.models),
                       reference.membership, reference.population)  # fmt: skip
    assert "needs threat model probs" in str(attack.applicable(labels))


METHOD_SOURCE = """
import numpy as np
from qmu_core.unlearning.base import Method, Result

not_a_method = object


class BadReads(Method):
    reads = "everything"
    def run(self, model, request, *, seed, progress=None): return Result([], True, 0)


class ReturnsNone(Method):
    reads = "U"
    def run(self, model, request, *, seed, progress=None): return None


class WordsInHistory(Method):
    reads = "U"
    def run(self, model, request, *, seed, progress=None): return Result([{"loss": "low"}], True, 0)


class NanWeights(Method):
    reads = "U"
    def run(self, model, request, *, seed, progress=None):
        model.variables["theta"].assign(np.full(model.variables["theta"].shape, np.nan, np.float32))
        return Result([{"loss": 0.0}], True, 4)


class Raises(Method):
    reads = "U, R"
    def run(self, model, request, *, seed, progress=None): raise ValueError("request too small")
"""


def test_a_broken_unlearning_plugin_is_named_with_its_fault_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qmu_core.config import ModelConfig
    from qmu_core.qnn.models import QNN
    from qmu_core.unlearning.base import Request
    from qmu_core.unlearning.plugin import method_class

    module = f"{FAKE}_methods"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(METHOD_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))
    names = ["not_a_method", "BadReads", "ReturnsNone", "WordsInHistory", "NanWeights", "Raises"]
    eps = [EntryPoint(name=n.lower(), value=f"{module}:{n}", group=plugins.UNLEARNING) for n in names]
    monkeypatch.setattr(plugins, "entry_points", lambda *, group: [ep for ep in eps if ep.group == group])
    method_class.cache_clear()
    try:
        unusable = r"Unlearning plug-in '{}' \(qmu.unlearning\) is unusable: "
        with pytest.raises(ConfigError, match=unusable.format("not_a_method") + "its entry point names"):
            method_class("not_a_method")
        with pytest.raises(ConfigError, match=unusable.format("badreads") + "`reads` is 'everything'"):
            method_class("badreads")
        qnn = QNN(ModelConfig(n_qubits=2, layers=1), n_classes=2, image_side=8, seed=0)
        x = np.random.default_rng(0).uniform(0, np.pi, (4, 2)).astype(np.float32)
        request = Request("class", x[:2], np.array([0, 0]), x[2:], np.array([1, 1]), stop_acc=0.05)
        cases = {
            "returnsnone": unusable.format("returnsnone") + "`run` returned NoneType, not a qmu_core",
            "wordsinhistory": unusable.format("wordsinhistory") + r"pass 1 of `Result.history` holds non-numbers",
            "nanweights": unusable.format("nanweights") + "it left non-finite values in the model's variable 'theta'",
            "raises": r"Plug-in 'raises' of qmu.unlearning .* failed in run: ValueError: request too small",
        }
        for name, message in cases.items():
            impl = method_class(name)(UnlearnConfig(), TrainConfig())
            assert impl.name == name
            with pytest.raises(ConfigError, match=message) as err:
                impl.run(qnn, request, seed=0)
            assert "unlearn.methods" in str(err.value), name
    finally:
        method_class.cache_clear()


@needs_example
def test_the_example_method_is_built_by_its_name_with_its_hint() -> None:
    from qmu_core import unlearning

    impl = unlearning.method(METHOD, UnlearnConfig(methods=(METHOD,)), TrainConfig())
    assert impl.name == METHOD and impl.reads == "U"
    assert unlearning.hint(METHOD) == "Raise unlearn.learning_rate or unlearn.max_epochs."
    with pytest.raises(ConfigError, match="Unknown unlearning method 'os:system'"):
        unlearning.method("os:system", UnlearnConfig(), TrainConfig())
