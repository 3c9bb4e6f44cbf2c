"""Each variant family is declared once (`qmu_core.config` catalogues), and its entries tell the truth.

The key of an unlearning stage holds only the `unlearn` fields its catalogue entry `reads`
(`UnlearnConfig.for_stage`), so a method that read any other field could change its result
without changing its key, and a finished artifact would be reused wrongly. The tests here run
every method's stage (and the relearn stage) with a config that records each field read, and
fail on any field the entry does not declare. The same for the attacks' construction and fit.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from qmu_core.attacks.audit import build
from qmu_core.attacks.base import Attack, Observations, Reference
from qmu_core.config import (
    ATTACK_PLUGINS,
    ATTACKS,
    METHOD_PLUGINS,
    METHODS,
    RELEARN,
    SAMPLER_CLASSES,
    SAMPLERS,
    AttackConfig,
    ModelConfig,
    QMUConfig,
    TrainConfig,
    UnlearnConfig,
    preset,
)
from qmu_core.unlearning.base import Method

T = typing.TypeVar("T", bound=BaseModel)


def _recording(config: T) -> tuple[T, set[str]]:
    """A copy of `config` (same class, so every check on it passes) that records each field read."""
    seen: set[str] = set()
    fields = set(type(config).model_fields)

    class Recording(type(config)):  # type: ignore[misc,valid-type]
        def __getattribute__(self, name: str) -> Any:
            if name in fields:
                seen.add(name)
            return super().__getattribute__(name)

    copy = Recording(**config.model_dump())
    seen.clear()  # what construction read
    return copy, seen


# ---------------------------------------------------------------- the catalogues and what reads them


def test_every_entry_names_its_implementation() -> None:
    for name, entry in METHODS.items():
        impl = entry.load()
        assert issubclass(impl, Method) and impl.name == name, name
        assert entry.title and entry.hint and entry.reads <= set(UnlearnConfig.model_fields), name
    for name, entry in ATTACKS.items():
        impl = entry.load()
        assert issubclass(impl, Attack) and impl.name == name, name
        assert entry.title and entry.reads <= set(AttackConfig.model_fields), name
    assert RELEARN.reads <= set(UnlearnConfig.model_fields) and callable(RELEARN.load())
    for kind, cls in SAMPLER_CLASSES.items():
        assert cls.model_fields["kind"].default == kind and SAMPLERS[kind].title.startswith(f"{kind}: ")


def test_the_literals_and_the_form_list_the_catalogues() -> None:
    """The catalogue first, then the installed plug-ins' names (`qmu_core.plugins`)."""
    methods = UnlearnConfig.model_fields["methods"].annotation
    assert typing.get_args(typing.get_args(methods)[0]) == METHODS.names + METHOD_PLUGINS
    assert typing.get_args(AttackConfig.model_fields["headline"].annotation) == ATTACKS.names + ATTACK_PLUGINS
    defs = QMUConfig.model_json_schema()["$defs"]
    assert defs["UnlearnConfig"]["properties"]["methods"]["items"]["enum"] == list(METHODS.names + METHOD_PLUGINS)
    assert defs["AttackConfig"]["properties"]["headline"]["enum"] == list(ATTACKS.names + ATTACK_PLUGINS)
    titles = {d["title"] for d in defs.values()}
    assert {v.title for v in SAMPLERS.values()} <= titles  # the form's label of each sampler kind
    with pytest.raises(ValueError, match="Unknown unlearning method 'nope'; choose from ga, ssd"):
        METHODS.entry("nope")


def test_a_stage_key_holds_exactly_the_fields_its_entry_reads() -> None:
    changed = UnlearnConfig(
        methods=("finetune",),
        seeds=3,
        objective="ascent",
        learning_rate=0.7,
        batch_size=5,
        max_epochs=3,
        stop_forget_acc=0.2,
        ssd_alpha=2.0,
        ssd_lambda=0.5,
        ssd_importance="fisher",
        rga_learning_rate=0.3,
        rga_retain_weight=2.0,
        salun_learning_rate=0.2,
        salun_sparsity=0.3,
        finetune_epochs=2,
        finetune_learning_rate=0.02,
        finetune_optimizer="train",
        relearn_max_steps=9,
        guard_drop=0.1,
        guard_records=20,
        step_scales=(1.0, 0.3),
    )
    default = UnlearnConfig()
    assert all(getattr(changed, f) != getattr(default, f) for f in UnlearnConfig.model_fields)
    for name, entry in [*METHODS.items(), ("relearn", RELEARN)]:
        keyed, base = changed.for_stage(name), default.for_stage(name)
        differs = {f for f in UnlearnConfig.model_fields if getattr(keyed, f) != getattr(base, f)}
        assert differs == entry.reads, name
        # a field added later stays out of the keys of the stages that do not read it (they keep their keys)
        assert ("finetune_optimizer" in base.model_dump()) == (name == "finetune"), name


def test_reports_and_hints_read_the_catalogues() -> None:
    from qmu_core import report

    assert not hasattr(report, "METHOD_NAMES") and not hasattr(report, "ATTACK_LABELS")
    assert METHODS.title("ga") == "gradient ascent" and ATTACKS.title("rmia") == "RMIA"
    assert METHODS.title("unknown") == "unknown"


# ---------------------------------------------------------------- each method reads only what its entry declares


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny preset's class request on a 3-qubit model trained one epoch (in this process)."""
    from qmu_core import artifacts, jobs
    from tasks import request_split, split_data

    root: Path = tmp_path_factory.mktemp("catalogue")
    data = preset("tiny").data
    model = ModelConfig(n_qubits=3, layers=1)
    base = split_data.task.fn(data=data, features=model.feature_spec, seed=0, source="digits:test", root=root)
    splits = request_split.task.fn(splits=base, data=data)
    train = TrainConfig(epochs=1, batch_size=16)
    trained = jobs.train_split(splits, model, train, data.classes, which="target", seed=0)
    weights = artifacts.write_output(trained, artifacts.plan("model", {"test": "catalogues"}, root=root), {})
    return {"weights": weights, "splits": splits, "model": model, "classes": data.classes, "train": train}


# Small settings so every method runs in seconds, and every branch that reads a field is taken
# (two step-size factors: the rule's loop goes on to a second factor; each factor traces the
# method's TensorFlow functions anew, about 1.5 s).
SMALL = UnlearnConfig(
    max_epochs=1, finetune_epochs=1, relearn_max_steps=2, batch_size=16, stop_forget_acc=0.0, step_scales=(1.0, 0.5)
)


@pytest.mark.parametrize("name", METHODS.names)
def test_each_method_stage_reads_only_the_fields_its_entry_declares(trained: dict[str, Any], name: str) -> None:
    from qmu_core import jobs

    config, seen = _recording(SMALL.for_stage(name))
    out = jobs.unlearn_split(
        trained["weights"],
        trained["splits"],
        trained["model"],
        trained["classes"],
        config,
        trained["train"],
        method=name,
        seed=0,
    )
    assert len(out.frame) and seen, name
    undeclared = seen - METHODS[name].reads
    assert not undeclared, f"{name} reads unlearn.{sorted(undeclared)}, which METHODS[{name!r}].reads does not list"


def test_the_relearn_stage_reads_only_the_fields_its_entry_declares(trained: dict[str, Any]) -> None:
    from qmu_core import jobs

    config, seen = _recording(SMALL.for_stage("relearn"))
    out = jobs.relearn_split(
        trained["weights"],
        trained["weights"],
        trained["splits"],
        trained["model"],
        trained["classes"],
        config,
        trained["train"],
        seed=0,
    )
    assert len(out.frame) and seen == RELEARN.reads, seen


# ---------------------------------------------------------------- each attack reads only what its entry declares


def _reference(n_models: int = 4, n: int = 40, seed: int = 0) -> tuple[Any, Reference]:
    """A population reference of `n_models` synthetic models on `n` records, and a split table."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    roles = np.repeat(["target_train", "target_holdout", "shadow_pool"], [n // 4, n // 4, n - n // 2])
    splits = pd.DataFrame({"sample_id": np.arange(n), "label": np.arange(n) % 2, "role": roles})
    label = splits["label"].to_numpy()
    membership = rng.random((n_models, n)) < 0.5
    models = []
    for member in membership:
        p_true = np.clip(0.6 + 0.3 * member + rng.normal(0, 0.05, n), 0.01, 0.99)
        probs = np.column_stack([p_true, 1 - p_true])
        probs[label == 1] = probs[label == 1][:, ::-1]
        models.append(Observations("probs", label, probs=probs, correct=probs.argmax(1) == label))
    return splits, Reference(tuple(models), membership, (roles == "shadow_pool"))


@pytest.mark.parametrize("name", ATTACKS.names)
def test_each_attack_reads_only_the_fields_its_entry_declares(name: str) -> None:
    splits, reference = _reference()
    for protocol in ("shadow", "paper"):
        config, seen = _recording(AttackConfig(reference="population", protocol=protocol, max_iter=50))
        attack = build(name, config, splits, seed=0).fit(reference)
        attack.score(reference.models[0])
        undeclared = seen - ATTACKS[name].reads - {"threat_model"}
        assert not undeclared, f"{name} reads attack.{sorted(undeclared)}, which ATTACKS[{name!r}].reads does not list"
