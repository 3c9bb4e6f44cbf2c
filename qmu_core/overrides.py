"""Config overrides: ``section.field=value`` assignments, config files, nested merges, validation.

Errors name the field, the bad value and what is allowed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from qmu_core.config import QMUConfig
from qmu_core.errors import ConfigError

__all__ = ["apply_overrides", "deep_merge", "load_config_file", "merge_sections", "validate"]

# What to write instead, for the pydantic error types a wrong JSON type produces.
_HINTS = {
    "int_type": "write a whole number such as 3 (not true/false, 3.0 or a quoted string)",
    "float_type": "write a number such as 0.05 (not true/false or a quoted string)",
    "bool_type": "write true or false",
    "extra_forbidden": "this section has no such field",
}


TAGGED_UNIONS = frozenset({"sampler"})
"""Config fields holding one of several section types chosen by their ``kind``."""


def _variant_defaults(kind: Any) -> dict[str, Any]:
    """The fields of the sampler variant `kind` at their defaults (just ``kind`` if unknown)."""
    from qmu_core.config import SAMPLER_CLASSES

    cls = SAMPLER_CLASSES.get(kind) if isinstance(kind, str) else None
    return cls().model_dump(mode="json") if cls is not None else {"kind": kind}


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in: nested dicts merge key by key, anything else replaces.

    A tagged union (`TAGGED_UNIONS`: ``hardware.sampler``) whose new ``kind`` differs from the
    base's is replaced whole: the old variant's fields do not belong to the new one.
    """
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        switches = key in TAGGED_UNIONS and isinstance(value, dict) and isinstance(old, dict) and "kind" in value
        if switches and value["kind"] != old.get("kind"):  # type: ignore[union-attr]
            out[key] = value
        elif isinstance(value, dict) and isinstance(old, dict):
            out[key] = deep_merge(old, value)
        else:
            out[key] = value
    return out


def _show(value: Any) -> str:
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate(raw: dict[str, Any], what: str) -> QMUConfig:
    """`raw` as a `QMUConfig`, or a `ConfigError` listing every bad field of `what`."""
    try:
        return QMUConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(config)"
            if err["type"] == "value_error":  # our own validators name the value and the fix
                lines.append(f"  {loc}: {err['msg'].removeprefix('Value error, ')}")
                continue
            hint = _HINTS.get(err["type"])
            lines.append(f"  {loc}: {err['msg']} (got {_show(err.get('input'))})" + (f"; {hint}" if hint else ""))
        raise ConfigError(
            f"{what} is not a valid QMU config:\n" + "\n".join(lines) + "\n"
            "See `qmu config schema` for every field, its type and its default."
        ) from None


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if text.lower() in {"none", "null"}:
            return None
        return text


def apply_overrides(config: QMUConfig, assignments: list[str]) -> QMUConfig:
    """Apply `section.field=value` strings (values parsed as JSON, else as text).

    A JSON object assigned to a whole section (``data={"n_test": 50}``) is merged into that
    section: the fields it names change, the others keep their values.
    """
    raw = config.model_dump(mode="json")
    for item in assignments:
        if "=" not in item:
            raise ConfigError(
                f"--set {item!r} has no '='. Write it as section.field=value, for example `--set train.epochs=3`."
            )
        path, _, value = item.partition("=")
        parts = path.strip().split(".")
        node: Any = raw
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node:
                known = ", ".join(node) if isinstance(node, dict) else "(none)"
                raise ConfigError(
                    f"--set {item!r}: {'.'.join(parts[: i + 1])!r} is not a config section. Known here: {known}."
                )
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            known = ", ".join(node) if isinstance(node, dict) else "(none)"
            raise ConfigError(f"--set {item!r}: {path!r} is not a config field. Known here: {known}.")
        parsed = _parse_value(value.strip())
        if isinstance(parsed, dict) and isinstance(node[parts[-1]], dict):
            old = node[parts[-1]]
            switches = parts[-1] in TAGGED_UNIONS and "kind" in parsed and parsed["kind"] != old.get("kind")
            node[parts[-1]] = parsed if switches else deep_merge(old, parsed)
        elif len(parts) > 1 and parts[-2] in TAGGED_UNIONS and parts[-1] == "kind" and node.get("kind") != parsed:
            node.clear()  # another variant of the union: its own fields at their defaults
            node.update(_variant_defaults(parsed))
        else:
            node[parts[-1]] = parsed
    return validate(raw, "The config after --set overrides")


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a `--config` file: a UTF-8 JSON object `{section: {field: value}}`."""
    path = Path(path)
    shape = 'a JSON object {"section": {"field": value}}, e.g. {"train": {"epochs": 3}}'
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"--config {path}: byte {exc.start} is not UTF-8 text ({exc.reason}); save the file as UTF-8 JSON."
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"--config {path}: cannot read it ({exc.strerror or exc}); pass an existing JSON file."
        ) from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"--config {path}: not valid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg}); "
            f"it must hold {shape}."
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(
            f"--config {path}: expected a JSON object {{section: {{field: value}}}}, but it holds a JSON "
            f"{type(raw).__name__} ({_show(raw)}); write {shape}."
        )
    return raw


def merge_sections(config: QMUConfig, raw: dict[str, Any], what: str) -> QMUConfig:
    """`config` with the `{section: {field: value}}` mapping `raw` (a config file) merged in.
    A top-level ``"preset": name`` replaces `config` by that preset first."""
    raw = dict(raw)
    if "preset" in raw:
        from qmu_core.presets import PRESETS, preset

        name = raw.pop("preset")
        if name not in PRESETS:
            raise ConfigError(f"{what}: preset {_show(name)} is not a preset. Known: {', '.join(PRESETS)}.")
        config = preset(name)
    known = {k: v for k, v in config.model_dump(mode="json").items() if k != "preset"}
    for section, fields in raw.items():
        if section not in known:
            raise ConfigError(f"{what}: {section!r} is not a config section. Known: {', '.join(known)}.")
        if not isinstance(fields, dict):
            raise ConfigError(
                f"{what}: section {section!r} is {_show(fields)}, but a section must be a JSON object of its "
                f'fields, e.g. "{section}": {{"{next(iter(known[section]))}": ...}}.'
            )
        unknown = [f for f in fields if f not in known[section]]
        if unknown:
            raise ConfigError(
                f"{what}: {', '.join(f'{section}.{f}' for f in unknown)} is not a config field. "
                f"Known in {section!r}: {', '.join(known[section])}."
            )
    return validate(deep_merge({"preset": config.preset, **known}, raw), what)
