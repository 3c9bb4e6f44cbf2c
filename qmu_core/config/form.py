"""How the config shows to people: the Prefect form's schema hooks, section titles, short values.

`QMUConfig` is the only parameter of every flow, so the Prefect UI renders its JSON schema as a
form; the hooks here shape that schema (`Section` installs them on every section). The form
lists each field's value in every preset, and the presets are built from `QMUConfig`, which is
composed above this module: `qmu_core.config` hands them in with `describe_presets`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, SerializationInfo

__all__ = [
    "EVERY_FIELD",
    "SECTION_TITLES",
    "Section",
    "brief",
    "describe_presets",
    "form_schema",
    "form_text",
    "preset_configs",
    "root_form_schema",
]

SECTION_TITLES = {
    "run": "Run",
    "data": "Data",
    "model": "Model",
    "train": "Training",
    "attack": "Membership attacks",
    "unlearn": "Unlearning",
    "hardware": "Hardware (finite shots)",
}
"""The form's heading of each `QMUConfig` section (the class names would show otherwise)."""

EVERY_FIELD = {"every_field": True}
"""``model_dump(context=EVERY_FIELD)``: every field, also those a section leaves out of its dump at
their legacy value (`unsaid`); the config tooling (``--set``, config files) needs to know them."""


def unsaid(out: dict[str, Any], info: SerializationInfo, fields: list[str]) -> dict[str, Any]:
    """`out`, a section's dump, without `fields` (unless dumped with `EVERY_FIELD`).

    So stage keys stay what they were before those fields existed.
    """
    if not (isinstance(info.context, dict) and info.context.get("every_field")):
        for name in fields:
            out.pop(name, None)
    return out


_built: list[Callable[[], Mapping[str, Any]]] = []


def describe_presets(built: Callable[[], Mapping[str, Any]]) -> None:
    """Let the form describe the presets: `built()` returns every preset as a config, by name.

    `qmu_core.config` calls this once it has composed `QMUConfig`, which the presets are built
    from (so this module, below it, never imports it).
    """
    _built[:] = [built]


def preset_configs() -> Mapping[str, Any]:
    """Every preset, built (`describe_presets`)."""
    if not _built:
        raise RuntimeError("qmu_core.config has not handed the presets to the form (describe_presets).")
    return _built[0]()


def brief(value: Any) -> str:
    """`value` as short JSON for a message (at most 80 characters)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def form_text(text: str) -> str:
    """A description as both Prefect UIs show it.

    No Markdown backticks (the V2 UI prints them) and no angle brackets (the V1 UI drops ``<...>`` as HTML).
    """
    text = re.sub(r"<([^<>\s]*)>", r"⟨\1⟩", text.replace("`", ""))
    return text.replace(" > ", " above ").replace(" < ", " below ").replace("<", "‹").replace(">", "›")


def form_schema(schema: dict[str, Any], cls: type[BaseModel], *, root: bool = False) -> None:
    """The JSON schema the Prefect form renders.

    No field-level defaults: each field's value in every preset is added to its description instead
    (`root`: `QMUConfig`, whose fields are the sections and the preset choice, titled by `SECTION_TITLES`).

    Prefect's form fills every field it shows with the schema's default before sending a run,
    which would override the chosen `preset` field with the class defaults. Without schema
    defaults, the fields a user leaves empty are not sent and come from the preset.

    A bool field is offered as a choice between ``true`` and ``false`` (``enum``, no ``type``)
    that starts empty: Prefect's older UI (``/deployments``) draws a ``"type": "boolean"`` as
    a switch and sends it as ``false`` untouched, which overrode presets that set it ``true``.
    Both UIs send an untouched choice not at all and a chosen one as a JSON boolean, which
    the server's schema check and the field itself (strict bool) accept; either UI's ⋮ menu
    "Omit value" returns it to the preset. Measured in both UIs: tests/e2e/test_ui_browser.py.
    """
    if "description" in schema:
        schema["description"] = form_text(schema["description"])
    for name, prop in schema.get("properties", {}).items():
        if root and name in SECTION_TITLES:
            prop["title"] = SECTION_TITLES[name]
        if prop.get("type") == "boolean":
            prop.pop("type")
            prop["enum"] = [True, False]
        if "default" not in prop or "const" in prop:
            if "description" in prop:
                prop["description"] = form_text(prop["description"])
            continue
        prop.pop("default")
        values = "" if root else preset_values(cls, name)  # sections, the preset choice
        text = prop.get("description", "").rstrip()
        if values and re.search(r"(?i)\bempty\b", text):  # it says what empty means (None: another field)
            if values != "null":
                listed = values.removeprefix("the preset's value (").removesuffix(")")
                text += f" Presets: {listed}."
        elif values:
            text += f" Empty: {values}."
        if text:
            prop["description"] = form_text(text)


def root_form_schema(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """`QMUConfig`'s form schema (`form_schema` with ``root``)."""
    form_schema(schema, cls, root=True)


class Section(BaseModel):
    """Base for config sections: immutable and strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=form_schema)


def preset_values(section: type[BaseModel], field: str) -> str:
    """What each preset sets `field` of config section class `section` to, for the form's descriptions.

    For example ``"the preset's value (tiny: 3; default: 60; paper, paper_angle: 20)"``, or the value
    alone when every preset agrees; empty if no preset uses that section class (sampler variants).
    """
    found: dict[str, Any] = {}
    for name, config in preset_configs().items():
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


def _sections(config: BaseModel) -> Iterator[BaseModel]:
    """Every config section inside `config`, nested ones too (hardware.sampler)."""
    for name in type(config).model_fields:
        value = getattr(config, name)
        if isinstance(value, BaseModel):
            yield value
            yield from _sections(value)
