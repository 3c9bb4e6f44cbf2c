"""Config overrides: ``section.field=value`` assignments, config files, and what a run changed.

Errors name the field, the bad value and what is allowed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qmu_core.config import PRESETS, SAMPLER_CLASSES, QMUConfig, preset, validate
from qmu_core.config.form import EVERY_FIELD, brief
from qmu_core.config.presets import TAGGED_UNIONS, deep_merge
from qmu_core.errors import ConfigError

__all__ = ["apply_overrides", "changed_fields", "changed_markdown", "load_config_file", "merge_sections"]


def _variant_defaults(kind: Any) -> dict[str, Any]:
    """The fields of the sampler variant `kind` at their defaults (just ``kind`` if unknown)."""
    cls = SAMPLER_CLASSES.get(kind) if isinstance(kind, str) else None
    return cls().model_dump(mode="json", context=EVERY_FIELD) if cls is not None else {"kind": kind}


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
    raw = config.model_dump(mode="json", context=EVERY_FIELD)
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
            f"{type(raw).__name__} ({brief(raw)}); write {shape}."
        )
    return raw


def merge_sections(config: QMUConfig, raw: dict[str, Any], what: str) -> QMUConfig:
    """`config` with the `{section: {field: value}}` mapping `raw` (a config file) merged in.

    A top-level ``"preset": name`` replaces `config` by that preset first.
    """
    raw = dict(raw)
    if "preset" in raw:
        name = raw.pop("preset")
        if name not in PRESETS:
            raise ConfigError(f"{what}: preset {brief(name)} is not a preset. Known: {', '.join(PRESETS)}.")
        config = preset(name)
    known = {k: v for k, v in config.model_dump(mode="json", context=EVERY_FIELD).items() if k != "preset"}
    for section, fields in raw.items():
        if section not in known:
            raise ConfigError(f"{what}: {section!r} is not a config section. Known: {', '.join(known)}.")
        if not isinstance(fields, dict):
            raise ConfigError(
                f"{what}: section {section!r} is {brief(fields)}, but a section must be a JSON object of its "
                f'fields, e.g. "{section}": {{"{next(iter(known[section]))}": ...}}.'
            )
        unknown = [f for f in fields if f not in known[section]]
        if unknown:
            raise ConfigError(
                f"{what}: {', '.join(f'{section}.{f}' for f in unknown)} is not a config field. "
                f"Known in {section!r}: {', '.join(known[section])}."
            )
    return validate(deep_merge({"preset": config.preset, **known}, raw), what)


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict) or not tree:
        return {prefix.rstrip("."): tree}
    return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}


def changed_fields(config: QMUConfig) -> dict[str, dict[str, Any]]:
    """Every field of `config` that differs from its preset, as JSON values.

    As ``{"train.epochs": {"value": 2, "preset": 3}, ...}``; the preset is
    `QMUConfig.preset`, the built-in defaults when it names none.

    A run records this, so a setting that changed without the user asking (a form sending a
    value nobody typed) shows in its summary and report.
    """
    base = preset(config.preset) if config.preset else QMUConfig()
    mine = _flat(config.model_dump(mode="json", exclude={"preset"}, context=EVERY_FIELD))
    theirs = _flat(base.model_dump(mode="json", exclude={"preset"}, context=EVERY_FIELD))
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
