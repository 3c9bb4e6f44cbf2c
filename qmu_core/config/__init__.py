"""The one typed configuration object, `QMUConfig`, composed of its sections.

`QMUConfig` is the only parameter of every flow, so the Prefect UI renders it as a form.
Every field has a default and a description; sections are frozen and reject unknown keys.
Numbers and switches are strict: an int field takes only a JSON integer (not ``true``, ``3.0``
or ``"3"``), a float field a JSON number, a bool field ``true``/``false``.
Nothing here imports TensorFlow or Prefect.

One module per section, as Prefect cuts ``prefect.settings.models``: `run` (run and data, the
artifact root's check, seed derivation), `model` (model and training), `attack`, `unlearn` and
`hardware`, each with the catalogue of its variants (`ATTACKS`, `METHODS`, `SAMPLERS`); `form`
(the Prefect form's schema hooks) and `catalogue` below them; `presets` (plain data). Above
this package root: `overrides` (``--set``, config files, what a run changed) and `reference`
(the generated Markdown reference). This module composes `QMUConfig` and builds presets.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, model_validator

from qmu_core.config import form
from qmu_core.config.attack import ATTACK_NAMES, ATTACK_PLUGINS, ATTACKS, AttackConfig
from qmu_core.config.catalogue import Catalogue, Variant
from qmu_core.config.form import Section, brief, root_form_schema
from qmu_core.config.hardware import (
    PROCESSORS,
    SAMPLER_CLASSES,
    SAMPLER_KINDS,
    SAMPLERS,
    EmulatorSampler,
    GoogleEngineSampler,
    GoogleNoisyQVMSampler,
    GoogleVirtualSampler,
    HardwareConfig,
    NoiseSetting,
    QsimNoisySampler,
    QsimSampler,
    SamplerConfig,
)
from qmu_core.config.model import FeatureSpec, ModelConfig, TrainConfig
from qmu_core.config.presets import PRESETS, PresetName, deep_merge
from qmu_core.config.reproduce import ReproduceConfig
from qmu_core.config.run import DataConfig, RunConfig, check_artifact_root, derive_seed
from qmu_core.config.unlearn import METHOD_PLUGINS, METHODS, RELEARN, UNLEARN_METHODS, UnlearnConfig
from qmu_core.errors import ConfigError

__all__ = [
    "ATTACKS",
    "ATTACK_NAMES",
    "ATTACK_PLUGINS",
    "METHODS",
    "METHOD_PLUGINS",
    "PRESETS",
    "PROCESSORS",
    "RELEARN",
    "SAMPLERS",
    "SAMPLER_CLASSES",
    "SAMPLER_KINDS",
    "UNLEARN_METHODS",
    "AttackConfig",
    "Catalogue",
    "DataConfig",
    "EmulatorSampler",
    "FeatureSpec",
    "GoogleEngineSampler",
    "GoogleNoisyQVMSampler",
    "GoogleVirtualSampler",
    "HardwareConfig",
    "NoiseSetting",
    "ModelConfig",
    "PresetName",
    "QMUConfig",
    "QsimNoisySampler",
    "QsimSampler",
    "ReproduceConfig",
    "RunConfig",
    "SamplerConfig",
    "Section",
    "TrainConfig",
    "UnlearnConfig",
    "Variant",
    "check_artifact_root",
    "derive_seed",
    "preset",
    "validate",
]


class QMUConfig(Section):
    """Everything one run depends on. It is also the flow's only parameter."""

    model_config = ConfigDict(json_schema_extra=root_form_schema)

    preset: PresetName | None = Field(
        None,
        description=(
            "Start from this named preset (tiny: a smoke test in about a minute; default: the HQNN that "
            "memorizes 250 digits; paper, paper_hqnn, paper_angle: the paper's models on 1,000 MNIST records; "
            "device_leak: a device-sized circuit that leaks, on 250 MNIST records). "
            "Every field given beside it overrides the preset's value; empty: the built-in defaults."
        ),
    )
    run: RunConfig = RunConfig()
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    attack: AttackConfig = AttackConfig()
    unlearn: UnlearnConfig = UnlearnConfig()
    hardware: HardwareConfig = HardwareConfig()

    @model_validator(mode="before")
    @classmethod
    def _start_from_preset(cls, data: Any) -> Any:
        """``{"preset": name, ...}``: the preset's values with the given ones merged over them.

        So a deployment or a config file names its preset instead of repeating it.
        """
        # An unknown name fails on the field, with the choices.
        if isinstance(data, dict) and isinstance(data.get("preset"), str) and data["preset"] in PRESETS:
            return deep_merge(PRESETS[data["preset"]](), data)
        return data

    @model_validator(mode="after")
    def _measured_seeds_are_trained(self) -> QMUConfig:
        """`qmu hardware` measures repeats the run trains: ``hardware.seeds <= unlearn.seeds``."""
        if self.hardware.seeds > self.unlearn.seeds:
            raise ValueError(
                f"hardware.seeds={self.hardware.seeds} asks to measure more training seeds than the run trains "
                f"(unlearn.seeds={self.unlearn.seeds}). Lower hardware.seeds, or raise unlearn.seeds to "
                f"{self.hardware.seeds} (form: the unlearn section's Seeds)."
            )
        return self

    @model_validator(mode="after")
    def _qfi_needs_one_encoding_layer(self) -> QMUConfig:
        """SSD's QFI of QMU's own ansatz assumes one encoding layer before it: refuse re-uploading before any stage."""
        if self.model.reupload and "ssd" in self.unlearn.methods and self.unlearn.ssd_importance == "qfi":
            raise ValueError(
                "unlearn.ssd_importance='qfi' needs model.reupload=false (the QFI assumes the encoding precedes the "
                "ansatz), but model.reupload=true and unlearn.methods runs ssd. Set unlearn.ssd_importance=fisher "
                "(form: the unlearn section's Ssd Importance), or leave ssd out of unlearn.methods."
            )
        return self


# What to write instead, for the pydantic error types a wrong JSON type produces.
_HINTS = {
    "int_type": "write a whole number such as 3 (not true/false, 3.0 or a quoted string)",
    "float_type": "write a number such as 0.05 (not true/false or a quoted string)",
    "bool_type": "write true or false",
    "extra_forbidden": "this section has no such field",
}
_PLUGIN_FIELDS = {("model", "kind"), ("attack", "plugins"), ("attack", "headline"), ("unlearn", "methods")}
_PLUGIN_HINT = (
    "choose one of those: a built-in, or the registered name of an installed plug-in (install the package "
    "that provides it); a module path is never imported"
)


def validate(raw: dict[str, Any], what: str) -> QMUConfig:
    """`raw` as a `QMUConfig`, or a `ConfigError` listing every bad field of `what`."""
    try:
        return QMUConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        errors = exc.errors()
        for err in errors:
            if err["type"] == "too_short" and any(
                e is not err and tuple(e["loc"][: len(err["loc"])]) == tuple(err["loc"]) for e in errors
            ):
                continue  # a list emptied by its own bad items: the items' errors say what is wrong
            loc = ".".join(str(p) for p in err["loc"]) or "(config)"
            if err["type"] == "value_error":  # our own validators name the value and the fix
                lines.append(f"  {loc}: {err['msg'].removeprefix('Value error, ')}")
                continue
            hint = _HINTS.get(err["type"])
            if err["type"] == "literal_error" and tuple(err["loc"][:2]) in _PLUGIN_FIELDS:
                hint = _PLUGIN_HINT
            lines.append(f"  {loc}: {err['msg']} (got {brief(err.get('input'))})" + (f"; {hint}" if hint else ""))
        raise ConfigError(
            f"{what} is not a valid QMU config:\n" + "\n".join(lines) + "\n"
            "See `qmu config schema` for every field, its type and its default."
        ) from None


def preset(name: str, **overrides: Any) -> QMUConfig:
    """Build a preset config, optionally with nested overrides (`run={"seed": 1}`).

    The result records its preset's name (`QMUConfig.preset`).
    """
    if name not in PRESETS:
        raise ConfigError(f"Unknown preset {name!r}. Choose one of: {', '.join(PRESETS)}.")
    raw = deep_merge({"preset": name, **PRESETS[name]()}, overrides)
    return validate(raw, f"preset {name!r}")


@functools.cache
def _all_presets() -> dict[str, QMUConfig]:
    """Every preset, built once (the form schema asks for each field's values)."""
    return {name: preset(name) for name in PRESETS}


form.describe_presets(_all_presets)
