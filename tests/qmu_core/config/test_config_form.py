"""The config as Prefect's two UIs render it (the form schema), and what their forms send.

The payloads below are what the UIs sent for a Custom run of deployment `default` with only
train.epochs changed (recorded with Chromium against `prefect server start`, Prefect 3.8.8; the
browser test tests/e2e/test_ui_browser.py repeats it end to end). With `"type": "boolean"` the
older UI (/deployments) drew every bool as a switch in the off position and sent it as `false`:
`OLD_V1` below, which silently turned off two settings the preset turns on.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from qmu_core.config import PRESETS, SAMPLER_CLASSES, QMUConfig, Section, preset

SENT = {  # ui: the body's `parameters` (both UIs leave untouched choices out; `kind` is the variant's tag)
    "v1": {"config": {"preset": "default", "hardware": {"sampler": {"kind": "emulator"}}, "train": {"epochs": 2}}},
    "v2": {"config": {"preset": "default", "hardware": {"sampler": {"kind": "emulator"}}, "train": {"epochs": 2}}},
}
OLD_V1 = {
    "config": {
        "preset": "default",
        "model": {"reupload": False},
        "attack": {"lira_fixed_variance": False, "n_shadow": 4},
        "hardware": {"measure_references": False},
    }
}


def _sections() -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    todo: list[type[BaseModel]] = [QMUConfig, *SAMPLER_CLASSES.values()]
    while todo:
        cls = todo.pop()
        if cls in found:
            continue
        found.append(cls)
        for field in cls.model_fields.values():
            if isinstance(field.annotation, type) and issubclass(field.annotation, Section):
                todo.append(field.annotation)
    return found


def _parameter_schema() -> dict[str, Any]:
    from prefect.utilities.callables import parameter_schema

    from flows.pipeline import qmu_pipeline

    return parameter_schema(qmu_pipeline.fn).model_dump()


def test_every_bool_field_is_a_true_false_choice_without_default() -> None:
    schema = QMUConfig.model_json_schema()
    bools = 0
    for cls in _sections():
        props = (
            schema["$defs"].get(cls.__name__, schema)["properties"] if cls is not QMUConfig else schema["properties"]
        )
        for name, field in cls.model_fields.items():
            if field.annotation is not bool:
                continue
            bools += 1
            prop = props[name]
            assert prop["enum"] == [True, False], f"{cls.__name__}.{name}: {prop}"
            assert "type" not in prop and "default" not in prop, f"{cls.__name__}.{name}: {prop}"
    assert bools >= 2  # model.reupload, attack.lira_fixed_variance, hardware.measure_references


@pytest.mark.parametrize("ui", sorted(SENT))
def test_what_each_form_sends_is_valid_and_resolves_to_the_preset_plus_the_change(ui: str) -> None:
    from prefect.utilities.schema_tools.validation import is_valid

    schema = _parameter_schema()
    sent = SENT[ui]
    assert is_valid(sent, schema)  # the server's check (jsonschema on the deployment's schema)
    expected = preset("default").model_dump(mode="json")
    expected["train"]["epochs"] = 2
    assert QMUConfig.model_validate(sent["config"]).model_dump(mode="json") == expected


def test_plain_booleans_still_pass_and_nothing_else_does() -> None:
    from prefect.utilities.schema_tools.validation import is_valid

    schema = _parameter_schema()
    for value in (True, False):
        config = {
            "preset": "default",
            "attack": {"lira_fixed_variance": value},
            "hardware": {"measure_references": value},
        }
        assert is_valid({"config": config}, schema)
        resolved = QMUConfig.model_validate(config)
        assert resolved.attack.lira_fixed_variance is value and resolved.hardware.measure_references is value
    for bad in ("true", "on", 1, 0, None):
        assert not is_valid({"config": {"attack": {"lira_fixed_variance": bad}}}, schema), bad
        with pytest.raises(ValidationError):
            QMUConfig.model_validate({"attack": {"lira_fixed_variance": bad}})
    # the old form's payload: valid, but it turned off what the preset turns on (why bools are a choice now)
    assert is_valid(OLD_V1, schema)
    old = QMUConfig.model_validate(OLD_V1["config"])
    assert preset("default").attack.lira_fixed_variance and not old.attack.lira_fixed_variance


def _texts(tree: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(tree, dict):
        found = [(f"{path}.{k}", v) for k, v in tree.items() if k in ("title", "description") and isinstance(v, str)]
        return found + [t for k, v in tree.items() for t in _texts(v, f"{path}.{k}")]
    if isinstance(tree, list):
        return [t for i, v in enumerate(tree) for t in _texts(v, f"{path}[{i}]")]
    return []


def test_form_texts_read_well_in_both_uis() -> None:
    schema = _parameter_schema()
    for where, text in _texts(schema):
        assert not re.search(r"[`<>]", text), f"{where}: {text!r} (V2 prints backticks, V1 drops <...>)"
        assert len(re.findall(r"(?i)\bempty\b", text)) <= 1, f"{where}: {text!r}"
    config = schema["definitions"]["QMUConfig"]["properties"]
    for name in ("run", "data", "model", "train", "attack", "unlearn", "hardware"):
        title = config[name]["title"]
        assert title and "Config" not in title, f"section {name} is titled {title!r}"
    sampler = schema["definitions"]["HardwareConfig"]["properties"]["sampler"]
    refs = [option["$ref"].rsplit("/", 1)[1] for option in sampler["anyOf"]]
    kinds = {preset(name).hardware.sampler.kind for name in PRESETS}
    assert len(kinds) == 1, f"presets use samplers {kinds}: the form's first (preselected) variant fits only one"
    first = schema["definitions"][refs[0]]
    assert first["properties"]["kind"]["const"] == kinds.pop()  # the one the form shows selected
    for ref in refs:
        assert not schema["definitions"][ref]["title"].endswith("Sampler"), schema["definitions"][ref]["title"]
