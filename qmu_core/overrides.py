"""Config overrides: ``section.field=value`` assignments, nested merges and validation.

Errors name the field, the bad value and what is allowed.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from qmu_core.config import QMUConfig
from qmu_core.errors import ConfigError

__all__ = ["apply_overrides", "deep_merge", "validate"]


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def validate(raw: dict[str, Any], what: str) -> QMUConfig:
    try:
        return QMUConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(config)"
            lines.append(f"  {loc}: {err['msg']} (got {err.get('input')!r})")
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
    """Apply `section.field=value` strings (values parsed as JSON, else as text)."""
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
        node[parts[-1]] = _parse_value(value.strip())
    return validate(raw, "The config after --set overrides")
