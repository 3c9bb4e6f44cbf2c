"""The README's configuration reference, generated from the config's field metadata."""

from __future__ import annotations

import json

from qmu_core.config import QMUConfig

__all__ = ["reference_markdown"]


def reference_markdown() -> str:
    """The README's configuration reference: one table per section, from the field metadata."""
    lines: list[str] = []
    for section, field in QMUConfig.model_fields.items():
        cls = field.annotation
        assert cls is not None and cls.__doc__ is not None
        lines += ["", f"**`{section}`**: {cls.__doc__.strip().splitlines()[0]}", ""]
        lines += ["| field | default | meaning |", "|---|---|---|"]
        for name, f in cls.model_fields.items():
            d = f.default
            text = json.dumps(list(d)) if isinstance(d, tuple) else ("null" if d is None else str(d))
            text = text if len(text) <= 30 else text[:27] + "..."
            lines.append(f"| `{section}.{name}` | `{text}` | {f.description} |")
    return "\n".join(lines).lstrip("\n") + "\n"
