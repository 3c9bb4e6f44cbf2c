"""Named starting points for a config: `tiny`, `default`, `paper`, `paper_hqnn`, `paper_angle`.

Presets are Python functions returning nested overrides of the defaults, so they stay typed
and testable; `preset(name)` validates the result.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from typing import Any, get_args

from pydantic import BaseModel

from qmu_core.config import PresetName, QMUConfig
from qmu_core.errors import ConfigError
from qmu_core.overrides import deep_merge, validate

__all__ = ["PRESETS", "changed_fields", "changed_markdown", "preset"]


def _tiny() -> dict[str, Any]:
    return {
        "data": {
            "dataset": "digits",
            "classes": [0, 1, 4, 7],
            "n_target_train": 120,
            "n_target_holdout": 60,
            "n_shadow_pool": 120,
            "n_test": 60,
        },
        "model": {"n_qubits": 4, "layers": 2},
        "train": {"epochs": 3, "batch_size": 16, "learning_rate": 0.1},
        "attack": {"n_shadow": 2, "max_iter": 300},
        "unlearn": {"max_epochs": 5, "learning_rate": 0.5},
    }


def _default() -> dict[str, Any]:
    """The first run a user sees: the paper's HQNN on a small training set, so it memorizes.

    A model that does not overfit leaks nothing measurable (the basic QNN on 500 digits sits at
    AUC 0.5), and then neither a leak nor its removal can be shown. 150 training records and 60
    Adam epochs make the paper's HQNN architecture (CNN front end, 8-qubit amplitude encoding,
    L = 1) fit its training set exactly while keeping about 0.9 test accuracy. The holdout and
    the pool are sized so the candidate records are twice the training set: each population
    reference model then trains on as many records as the target (150), with the same recipe.
    """
    return {
        "data": {"n_target_train": 150, "n_target_holdout": 100, "n_shadow_pool": 50, "n_test": 300},
        "model": {"kind": "hqnn", "encoding": "amplitude", "n_qubits": 8, "layers": 1, "init": "uniform_pi"},
        "train": {"epochs": 60, "batch_size": 16, "learning_rate": 0.01, "optimizer": "adam"},
        "unlearn": {
            "learning_rate": 1.0,
            "batch_size": 32,
            "max_epochs": 20,
            "rga_retain_weight": 3.0,
            "salun_learning_rate": 0.3,
        },
    }


def _paper() -> dict[str, Any]:
    return {
        "data": {
            "dataset": "mnist",
            "n_target_train": 1000,
            "n_target_holdout": 500,
            "n_shadow_pool": 500,
            "n_test": 1000,
        },
        "model": {"kind": "basic_qnn", "encoding": "amplitude", "n_qubits": 8, "layers": 10},
        "train": {
            "epochs": 20,
            "batch_size": 32,
            "learning_rate": 0.05,
            "optimizer": "nesterov",
            "loss": "bce_sum",
        },
        "attack": {"n_shadow": 8},
        "unlearn": {"learning_rate": 0.05, "batch_size": 32, "objective": "ascent"},
    }


def _paper_angle() -> dict[str, Any]:
    """The paper's basic QNN with angle encoding: 80 CNOTs on an 8-qubit ring fit a device, where
    amplitude encoding needs hundreds of routed two-qubit gates (`qmu hardware`, `qmu shots`)."""
    cfg = _paper()
    cfg["model"] = {**cfg["model"], "encoding": "angle"}
    return cfg


def _paper_hqnn() -> dict[str, Any]:
    cfg = _paper()
    cfg["model"] = {
        "kind": "hqnn",
        "encoding": "amplitude",
        "n_qubits": 8,
        "layers": 1,
        "init": "uniform_pi",
    }
    cfg["train"] = {
        "epochs": 25,
        "batch_size": 8,
        "learning_rate": 0.1,
        "optimizer": "sgd",
        "loss": "cross_entropy",
    }
    cfg["unlearn"] = {"learning_rate": 0.01, "batch_size": 16, "max_epochs": 6, "objective": "ascent"}
    return cfg


PRESETS: dict[str, Callable[[], dict[str, Any]]] = {
    "tiny": _tiny,
    "default": _default,
    "paper": _paper,
    "paper_hqnn": _paper_hqnn,
    "paper_angle": _paper_angle,
}


if set(PRESETS) != set(get_args(PresetName)):
    raise ImportError(f"qmu_core.config.PresetName {get_args(PresetName)} must list the presets {list(PRESETS)}.")


def preset(name: str, **overrides: Any) -> QMUConfig:
    """Build a preset config, optionally with nested overrides (`run={"seed": 1}`). The result
    records its preset's name (`QMUConfig.preset`)."""
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset {name!r}. Choose one of: {', '.join(PRESETS)}.")
    raw = deep_merge({"preset": name, **PRESETS[name]()}, overrides)
    return validate(raw, f"preset {name!r}")


def preset_values(section: type[BaseModel], field: str) -> str:
    """What each preset sets `field` of config section class `section` to, for the form's
    descriptions: ``"the preset's value (tiny: 3; default: 60; paper, paper_angle: 20)"``, or
    the value alone when every preset agrees;
    empty if no preset uses that section class (sampler variants)."""
    found: dict[str, Any] = {}
    for name, config in _all_presets().items():
        for part in _sections(config):
            if type(part) is section:
                found[name] = getattr(part, field)
                break
    if not found:
        return ""
    shown = {
        k: json.dumps(v.model_dump(mode="json") if isinstance(v, BaseModel) else v, default=str)
        for k, v in found.items()
    }
    groups: dict[str, list[str]] = {}
    for name, text in shown.items():
        groups.setdefault(text, []).append(name)
    if len(groups) == 1:
        return next(iter(groups))
    return "the preset's value (" + "; ".join(f"{', '.join(names)}: {text}" for text, names in groups.items()) + ")"


@functools.cache
def _all_presets() -> dict[str, QMUConfig]:
    """Every preset, built once (the form schema asks for each field's values)."""
    return {name: preset(name) for name in PRESETS}


def _sections(config: BaseModel) -> Iterator[BaseModel]:
    """Every config section inside `config`, nested ones too (hardware.sampler)."""
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, BaseModel):
            yield value
            yield from _sections(value)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict) or not tree:
        return {prefix.rstrip("."): tree}
    return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}


def changed_fields(config: QMUConfig) -> dict[str, dict[str, Any]]:
    """``{"train.epochs": {"value": 2, "preset": 3}, ...}``: every field of `config` that differs
    from its preset (`QMUConfig.preset`; the built-in defaults when it names none), as JSON values.

    A run records this, so a setting that changed without the user asking (a form sending a
    value nobody typed) shows in its summary and report.
    """
    base = preset(config.preset) if config.preset else QMUConfig()
    mine = _flat(config.model_dump(mode="json", exclude={"preset"}))
    theirs = _flat(base.model_dump(mode="json", exclude={"preset"}))
    missing = object()
    return {
        k: {"value": mine.get(k), "preset": theirs.get(k)}
        for k in sorted(mine.keys() | theirs.keys())
        if mine.get(k, missing) != theirs.get(k, missing)
    }


def changed_markdown(config: QMUConfig) -> str:
    """A report section listing `changed_fields` (or saying that nothing changed)."""
    changed = changed_fields(config)
    name = f"preset `{config.preset}`" if config.preset else "the built-in defaults (no preset)"
    head = f"## Settings changed from {name}\n\n"
    if not changed:
        return head + f"None: the run used {name} as it is.\n"
    rows = "".join(
        f"| `{k}` | `{json.dumps(v['value'])}` | `{json.dumps(v['preset'])}` |\n" for k, v in changed.items()
    )
    return head + "| field | this run | preset |\n|---|---|---|\n" + rows
